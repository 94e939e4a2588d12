import {Flags} from '@oclif/core'
import {Listr, ListrLogger, ProcessOutput} from 'listr2'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {ExitCode} from '../../src/errors.js'
import {DEFAULT_BATCH, MAX_BATCH, planInit, type InitResult, type ServerInitResult} from '../../src/shards/init.js'
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
    const pools = new ServerPools(settings, {max: 4, applicationName: 'feedops shards init'})
    const started = performance.now()
    try {
      const plan = await planInit(pools, settings, {logical: flags.logical, batch: flags.batch})
      let results: ServerInitResult[]
      try {
        results = this.interactive
          ? await this.runWithProgress(plan)
          : await Promise.all(plan.servers.map((s) => plan.runServer(s.name)))
      } catch (err) {
        await plan.abort()
        throw err
      }
      const result = {...(await plan.finish(results)), seconds: Number(((performance.now() - started) / 1000).toFixed(3))}
      this.log(initTable(result))
      this.log(
        `${result.created} schema${result.created === 1 ? '' : 's'} created, ${result.existing} already there; ` +
          `${result.complete ? 'all' : 'NOT all'} ${result.logical} logical shards exist; map version ${result.version}; ${result.seconds} s`,
      )
      if (!result.complete || result.servers.some((s) => s.error)) this.setExitCode(ExitCode.failed)
      return result
    } finally {
      await pools.end()
    }
  }

  private async runWithProgress(plan: Awaited<ReturnType<typeof planInit>>): Promise<ServerInitResult[]> {
    const results: ServerInitResult[] = []
    const tasks = new Listr(
      plan.servers.map((s) => ({
        title: `${s.name}: ${s.total - s.pending.length}/${s.total} schemas`,
        task: async (_: unknown, task: {title: string}) => {
          const r = await plan.runServer(s.name, (p) => {
            task.title = `${p.server}: ${p.done}/${p.total} schemas`
          })
          results.push(r)
          if (r.error) throw new Error(`${s.name}: ${r.error}`)
        },
      })),
      {
        concurrent: true,
        exitOnError: false,
        registerSignalListeners: false,
        rendererOptions: {logger: new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)})},
      },
    )
    await tasks.run().catch(() => undefined)
    return plan.servers.map((s) => results.find((r) => r.server === s.name)!)
  }
}
