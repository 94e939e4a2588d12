import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {idArg} from '../../src/cli/numbers.js'
import {resolveEpoch} from '../../src/shards/epoch-config.js'
import {decodeId} from '../../src/shards/ids.js'

interface IdsDecodeResult {
  id: string
  time: string
  msSinceEpoch: string
  shard: number
  seq: number
  epoch: string
  epochSource: 'flag' | 'config' | 'default'
}

export default class IdsDecode extends FeedopsCommand<IdsDecodeResult> {
  static override description =
    'Decode a 64-bit id into its time (41 bits of ms since the epoch), logical shard (13 bits) and sequence (10 bits).'

  static override examples = [
    '<%= config.bin %> ids decode 4207903476602117120',
    '<%= config.bin %> ids decode 4207903476602117120 --json',
    '<%= config.bin %> ids decode 4207903476602117120 --epoch 2011-01-01T00:00:00Z',
  ]

  static override args = {id: idArg({description: 'The id: decimal digits (or the negative number Postgres shows).', required: true})}

  static override flags = {
    epoch: Flags.string({description: 'Id epoch (ISO time). Default: env.shards.epoch of the config if one is found, else 2011-01-01T00:00:00Z.'}),
  }

  async run(): Promise<IdsDecodeResult> {
    const {args, flags} = await this.parse(IdsDecode)
    const id = args.id
    const epoch = resolveEpoch({epochFlag: flags.epoch, config: flags.config, env: flags.env})
    const d = decodeId(id, epoch.ms)
    const result: IdsDecodeResult = {
      id: d.id.toString(),
      time: d.time.toISOString(),
      msSinceEpoch: d.msSinceEpoch.toString(),
      shard: d.shard,
      seq: d.seq,
      epoch: epoch.iso,
      epochSource: epoch.source,
    }
    this.log(`id     ${result.id}`)
    this.log(`time   ${result.time}  (${result.msSinceEpoch} ms since the epoch)`)
    this.log(`shard  ${result.shard}`)
    this.log(`seq    ${result.seq}`)
    this.log(`epoch  ${result.epoch}  (${epoch.source})`)
    return result
  }
}
