import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {shardFlag} from '../../src/cli/numbers.js'
import {resolveEpoch} from '../../src/shards/epoch-config.js'
import {UserError} from '../../src/errors.js'
import {epochProblem, newId} from '../../src/shards/ids.js'

const MAX_COUNT = 100_000

interface IdsNewResult {
  shard: number
  epoch: string
  ids: string[]
}

export default class IdsNew extends FeedopsCommand<IdsNewResult> {
  static override description =
    'Generate ids for a logical shard, in this process (strictly increasing; the database makes its own with next_id()).'

  static override examples = ['<%= config.bin %> ids new --shard 12', '<%= config.bin %> ids new --shard 12 --count 5 --json']

  static override flags = {
    shard: shardFlag({required: true}),
    count: Flags.integer({description: `How many ids (1..${MAX_COUNT}).`, default: 1, min: 1, max: MAX_COUNT}),
    epoch: Flags.string({description: 'Id epoch (ISO time). Default: env.shards.epoch of the config if one is found, else 2011-01-01T00:00:00Z.'}),
  }

  async run(): Promise<IdsNewResult> {
    const {flags} = await this.parse(IdsNew)
    const epoch = resolveEpoch({epochFlag: flags.epoch, config: flags.config, env: flags.env})
    const problem = epochProblem(epoch.ms)
    if (problem) {
      throw new UserError(problem, {
        fix: epoch.source === 'config' ? 'Fix env.shards.epoch in the config, or pass --epoch.' : 'Pass an --epoch in the past 69 years.',
      })
    }
    const ids: string[] = []
    for (let i = 0; i < flags.count; i++) ids.push(newId(flags.shard, epoch.ms).toString())
    this.log(ids.join('\n'))
    return {shard: flags.shard, epoch: epoch.iso, ids}
  }
}
