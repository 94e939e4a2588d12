import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {progressMode, withProgress} from '../../src/cli/progress.js'
import {ExitCode} from '../../src/errors.js'
import {connectRedis} from '../../src/shards/photo-map-redis.js'
import {ServerPools} from '../../src/shards/pools.js'
import {
  REINDEX_DEFAULT_BATCH,
  reindexPhotos,
  validateReindexOptions,
  type ReindexOptions,
  type ReindexResult,
} from '../../src/shards/reindex.js'
import {requireShards} from '../../src/shards/settings.js'

export default class ShardsReindexPhotos extends FeedopsCommand<ReindexResult> {
  static override description = `Rebuild the Redis photo→owner map from Postgres.

Streams every logical shard's photos in id order (keyset pages of --batch), physical servers in parallel, into a new generation of hash buckets written with pipelines, then switches readers to it, copies photos made meanwhile again, and deletes the old generation. Pass --capacity to rebuild with more buckets when the map has outgrown its capacity.`

  static override examples = [
    '<%= config.bin %> shards reindex-photos',
    '<%= config.bin %> shards reindex-photos --batch 20000',
    '<%= config.bin %> shards reindex-photos --capacity 50000000 --json',
  ]

  static override flags = {
    batch: Flags.integer({description: 'Photos per page and per Redis pipeline (100..100000).', default: REINDEX_DEFAULT_BATCH}),
    capacity: Flags.integer({description: 'Mappings the new map is sized for (default: the current capacity, else 10,000,000).'}),
    concurrency: Flags.integer({description: 'Shards streamed at once per Postgres server (1..16).', default: 2}),
  }

  async run(): Promise<ReindexResult> {
    const {flags} = await this.parse(ShardsReindexPhotos)
    const loaded = this.loadConfig(flags)
    const settings = requireShards(loaded)
    const options: ReindexOptions = {batch: flags.batch, concurrency: flags.concurrency, ...(flags.capacity === undefined ? {} : {capacity: flags.capacity})}
    validateReindexOptions(options)
    const redis = await connectRedis(loaded.env, loaded.environment)
    const pools = new ServerPools(settings, {max: flags.concurrency + 1, applicationName: 'feedops shards reindex-photos'})
    try {
      const result = await withProgress(
        settings.servers.map((s) => s.name),
        progressMode(this.jsonEnabled()),
        async (progress) => {
          const n = (x: number) => x.toLocaleString('en-US')
          const reindexed = await reindexPhotos(pools, settings, redis, options, (p) =>
            progress.update(p.server, `${p.shardsDone}/${p.shards} shards, ${n(p.photos)} photos`),
          )
          for (const s of reindexed.servers) progress.done(s.server, !s.error, s.error)
          return reindexed
        },
      )
      this.render(result)
      if (!result.complete) this.setExitCode(ExitCode.failed)
      return result
    } finally {
      redis.disconnect()
      await pools.end()
    }
  }

  private render(r: ReindexResult): void {
    const n = (x: number) => x.toLocaleString('en-US')
    for (const s of r.servers) {
      this.log(`${s.server.padEnd(8)} ${String(s.shards).padStart(5)} shards  ${n(s.photos).padStart(12)} photos${s.error ? `  FAILED: ${s.error}` : ''}`)
    }
    const l = r.layout
    if (r.complete) {
      this.log(
        `Rebuilt the photo map: ${n(r.photos)} photos into generation ${l.generation} (capacity ${n(l.capacity)}, ${n(l.buckets)} buckets)` +
          `${r.caughtUp ? `, ${n(r.caughtUp)} recent photos copied again after the switch` : ''}; ${n(r.droppedKeys)} old keys deleted; ${r.seconds} s.`,
      )
      if (r.stats) {
        this.log(
          `Buckets: ${n(r.stats.bucketKeys)} holding ${n(r.stats.mappings)} mappings, mean fill ${r.stats.meanFill}, max ${r.stats.maxFill}, ${r.stats.notListpack === 0 ? 'all listpack' : `${r.stats.notListpack} not listpack`}.`,
        )
      }
    } else {
      this.log(`The rebuild did not finish; ${r.previous ? `the map stays at generation ${r.previous.generation}` : 'the map is partial'}. ${r.seconds} s.`)
    }
    for (const w of r.warnings) this.warn(w)
  }
}
