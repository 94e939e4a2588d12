import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {interruptedWord, trapInterrupts} from '../../src/cli/interrupts.js'
import {progressMode, withProgress} from '../../src/cli/progress.js'
import {ExitCode} from '../../src/errors.js'
import {DEFAULT_BATCH, initShards, MAX_BATCH, type InitResult} from '../../src/shards/init.js'
import {ServerPools} from '../../src/shards/pools.js'
import {initTable} from '../../src/shards/render.js'
import {requireShards} from '../../src/shards/settings.js'

export default class ShardsInit extends FeedopsCommand<InitResult> {
  static override description =
    'Create the shard catalog and one schema per logical shard across the physical Postgres servers (idempotent; resumes after a crash).'

  static override examples = [
    '<%= config.bin %> shards init',
    '<%= config.bin %> shards init --logical 8192 --batch 64',
    '<%= config.bin %> shards init --env prod --json',
  ]

  static override flags = {
    logical: Flags.integer({description: 'Number of logical shards, 1..8192 (default: env.shards.logical). Fixed once the catalog exists.'}),
    batch: Flags.integer({description: `Schemas created per transaction and round trip, 1..${MAX_BATCH}.`, default: DEFAULT_BATCH}),
  }

  async run(): Promise<InitResult> {
    const {flags} = await this.parse(ShardsInit)
    const settings = requireShards(this.loadConfig(flags))
    const json = this.jsonEnabled()
    const pools = new ServerPools(settings, {max: 4, applicationName: 'feedops shards init'})
    const trap = trapInterrupts((sig) => {
      if (!json) process.stderr.write(`\n${interruptedWord(sig)}: stopping after the batch each server is on (again to quit at once)\n`)
    })
    let done: InitResult
    try {
      done = await withProgress(settings.servers.map((s) => s.name), progressMode(json), async (progress) => {
        const r = await initShards(pools, settings, {logical: flags.logical, batch: flags.batch, signal: trap.signal}, (p) =>
          progress.update(p.server, `${p.done}/${p.total} schemas`),
        )
        for (const s of r.servers) progress.done(s.server, !s.error, s.error ?? `${s.shards} schemas`)
        return r
      })
    } finally {
      trap.dispose()
      await pools.end()
    }
    const result = {...done, seconds: Number(done.seconds.toFixed(3))}
    this.log(initTable(result))
    this.log(
      `${result.created} schema${result.created === 1 ? '' : 's'} created, ${result.existing} already there; ` +
        `${result.complete ? 'all' : 'NOT all'} ${result.logical} logical shards exist; map version ${result.version}; ${result.seconds} s`,
    )
    if (trap.received) this.setExitCode(ExitCode.interrupted)
    else if (!result.complete || result.servers.some((s) => s.error)) this.setExitCode(ExitCode.failed)
    return result
  }
}
