import {Flags} from '@oclif/core'
import {Listr, ListrLogger, ProcessOutput} from 'listr2'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {ExitCode} from '../../src/errors.js'
import {connectRedis} from '../../src/shards/photo-map/redis.js'
import {ServerPools} from '../../src/shards/pools.js'
import {seedLab, type SeedOptions, type SeedProgress, type SeedResult} from '../../src/shards/seed/index.js'
import {requireShards} from '../../src/shards/settings.js'

export default class LabSeed extends FeedopsCommand<SeedResult> {
  static override description = `Fill the sharded Postgres servers and the Redis photo map with realistic data, fast.

Users get ids from the catalog's user id sequence and live in their hashed shard; follow counts have a long tail (most follow a few dozen, some thousands; a few users are followed by many); photos are spread over the last months with ids made from their time and their owner's shard, so ids sort by time. Rows go in with COPY, per shard in batches, all servers in parallel. Needs \`feedops shards init\`. Running it again adds more data.`

  static override examples = [
    '<%= config.bin %> lab seed --users 100000 --photos 1000000',
    '<%= config.bin %> lab seed --users 1000 --photos 20000 --follows-median 50',
    '<%= config.bin %> lab seed --users 100000 --photos 1000000 --json',
  ]

  static override flags = {
    users: Flags.integer({description: 'Users to add.', required: true}),
    photos: Flags.integer({description: 'Photos to add (spread over the new users, some posting far more).', required: true}),
    'follows-median': Flags.integer({description: 'Median number of users each new user follows (lognormal tail).', default: 30}),
    days: Flags.integer({description: 'Photo times are spread over this many days up to now.', default: 182}),
    batch: Flags.integer({description: 'Rows per COPY statement.', default: 100_000}),
    connections: Flags.integer({description: 'Shards loaded at once per Postgres server.', default: 2}),
  }

  async run(): Promise<SeedResult> {
    const {flags} = await this.parse(LabSeed)
    const loaded = this.loadConfig(flags)
    const settings = requireShards(loaded)
    const options: SeedOptions = {
      users: flags.users,
      photos: flags.photos,
      followsMedian: flags['follows-median'],
      days: flags.days,
      batch: flags.batch,
      connections: flags.connections,
    }
    const redis = await connectRedis(loaded.env, loaded.environment)
    const pools = new ServerPools(settings, {max: flags.connections + 1, applicationName: 'feedops lab seed'})
    try {
      const result = this.interactive
        ? await this.withProgress((onProgress) => seedLab(pools, settings, redis, options, onProgress))
        : await seedLab(pools, settings, redis, options)
      this.render(result)
      if (result.servers.some((s) => s.error)) this.setExitCode(ExitCode.failed)
      return result
    } finally {
      redis.disconnect()
      await pools.end()
    }
  }

  private render(r: SeedResult): void {
    const n = (x: number) => x.toLocaleString('en-US')
    for (const s of r.servers) {
      this.log(`${s.server.padEnd(8)} ${String(s.shards).padStart(5)} shards  ${n(s.users).padStart(11)} users  ${n(s.photos).padStart(12)} photos  ${n(s.follows).padStart(13)} follows${s.error ? `  FAILED: ${s.error}` : ''}`)
    }
    this.log(`Added ${n(r.users)} users, ${n(r.photos)} photos and ${n(r.follows)} follows on ${r.logical} logical shards in ${r.seconds} s.`)
    if (r.userIds) this.log(`User ids ${r.userIds.first}…${r.userIds.last}.`)
    if (r.photoTimes) this.log(`Photo times ${r.photoTimes.from} … ${r.photoTimes.to}.`)
    const d = (x: SeedResult['followsPerUser']) => `median ${n(x.median)}, p90 ${n(x.p90)}, p99 ${n(x.p99)}, max ${n(x.max)}`
    this.log(`Follows per user: ${d(r.followsPerUser)}. Followers per user: ${d(r.followersPerUser)}. Photos per user: ${d(r.photosPerUser)}.`)
    this.log(`Photo map: ${n(r.mapped)} mappings written; it holds ${n(r.photoMap.mappings)} in ${n(r.photoMap.buckets)} buckets.`)
    this.log(`Follow counts: rebuilt in Redis for ${n(r.counts.users)} users from ${n(r.counts.follows)} follows.`)
    if (r.skippedPhotos > 0) this.log(`${n(r.skippedPhotos)} generated photo id(s) already existed (an earlier seed) and were skipped.`)
    for (const w of r.warnings) this.warn(w)
  }

  /** listr2 on stderr: one line per server, from the first progress report to the end. */
  private async withProgress(work: (onProgress: (p: SeedProgress) => void) => Promise<SeedResult>): Promise<SeedResult> {
    const latest = new Map<string, SeedProgress>()
    const titles = new Map<string, {title: string}>()
    let started: () => void = () => {}
    const firstReport = new Promise<void>((r) => (started = r))
    const n = (x: number) => x.toLocaleString('en-US')
    const titleOf = (p: SeedProgress) =>
      `${p.server}: ${p.shardsDone}/${p.shards} shards, ${n(p.users)} users, ${n(p.photos)} photos, ${n(p.follows)} follows` +
      (p.shardsDone === p.shards ? `, ${p.shardsVacuumed}/${p.shards} vacuumed` : '')
    const running = work((p) => {
      latest.set(p.server, p)
      const t = titles.get(p.server)
      if (t) t.title = titleOf(p)
      started()
    })
    const tasks = new Listr(
      [
        {
          title: 'Planning users, follows and photos',
          task: async (_ctx: unknown, task) => {
            // every server reports in the same tick, so all are known once the first one is
            await Promise.race([firstReport, running.catch(() => undefined)])
            task.title = 'Seeding'
            return task.newListr(
              [...latest.keys()].map((server) => ({
                title: titleOf(latest.get(server)!),
                task: async (_c: unknown, sub: {title: string}) => {
                  titles.set(server, sub)
                  await running.catch(() => undefined)
                  sub.title = titleOf(latest.get(server)!)
                },
              })),
              {concurrent: true},
            )
          },
        },
      ],
      {
        exitOnError: false,
        registerSignalListeners: false,
        rendererOptions: {logger: new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)})},
      },
    )
    await tasks.run().catch(() => undefined)
    return running
  }
}
