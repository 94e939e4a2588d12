import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {progressMode, withProgress} from '../../src/cli/progress.js'
import {ExitCode} from '../../src/errors.js'
import {RECOUNT_DEFAULT_BATCH, recountFollows, validateRecountOptions, type RecountOptions, type RecountResult} from '../../src/shards/counts.js'
import {connectRedis} from '../../src/shards/photo-map/redis.js'
import {ServerPools} from '../../src/shards/pools.js'
import {renderRecount} from '../../src/shards/render.js'
import {requireShards} from '../../src/shards/settings.js'

export default class ShardsRecount extends FeedopsCommand<RecountResult> {
  static override description = `Rebuild the follower and following counts in Redis from Postgres.

Postgres holds the follow edges (in the follower's shard); Redis keeps each user's two counts as a cache that the app moves on every follow and unfollow. This streams every shard's follows grouped by followee (COPY), physical servers in parallel, sums them per user, then writes both counts of every user in pipelines of --batch. Run it after Redis lost its data, or to check nothing drifted; \`lab seed\` runs it at its end.`

  static override examples = [
    '<%= config.bin %> shards recount',
    '<%= config.bin %> shards recount --batch 50000 --concurrency 4',
    '<%= config.bin %> shards recount --json',
  ]

  static override flags = {
    batch: Flags.integer({description: 'Users per Redis pipeline (100..100000).', default: RECOUNT_DEFAULT_BATCH}),
    concurrency: Flags.integer({description: 'Shards read at once per Postgres server (1..16).', default: 2}),
  }

  async run(): Promise<RecountResult> {
    const {flags} = await this.parse(ShardsRecount)
    const loaded = this.loadConfig(flags)
    const settings = requireShards(loaded)
    const options: RecountOptions = {batch: flags.batch, concurrency: flags.concurrency}
    validateRecountOptions(options)
    const redis = await connectRedis(loaded.env, loaded.environment)
    const pools = new ServerPools(settings, {max: flags.concurrency + 1, applicationName: 'feedops shards recount'})
    try {
      const servers = [...new Set(settings.servers.map((s) => s.name))]
      const n = (x: number) => x.toLocaleString('en-US')
      const result = await withProgress(servers, progressMode(this.jsonEnabled()), async (progress) => {
        const r = await recountFollows(pools, settings, redis, options, (p) =>
          progress.update(p.server, p.phase === 'followers' ? `counting follows, ${p.shardsDone}/${p.shards} shards` : `writing counts, ${p.shardsDone}/${p.shards} shards, ${n(p.users)} users`),
        )
        for (const server of servers) {
          const s = r.servers.find((x) => x.server === server)
          progress.done(server, !s?.error, s ? (s.error ?? `${n(s.users)} users`) : 'no shards')
        }
        return r
      })
      for (const line of renderRecount(result)) this.log(line)
      if (!result.complete) this.setExitCode(ExitCode.failed)
      return result
    } finally {
      redis.disconnect()
      await pools.end()
    }
  }
}
