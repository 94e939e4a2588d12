import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {progressMode, withProgress} from '../../src/cli/progress.js'
import {ExitCode} from '../../src/errors.js'
import {connectRedis} from '../../src/shards/photo-map-redis.js'
import {ServerPools} from '../../src/shards/pools.js'
import {seedLab, type SeedOptions, type SeedProgress, type SeedResult} from '../../src/shards/seed.js'
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
      const result = await withProgress(
        settings.servers.map((s) => s.name),
        progressMode(this.jsonEnabled()),
        async (progress) => {
          const seeded = await seedLab(pools, settings, redis, options, (p) => progress.update(p.server, seedProgressText(p)))
          for (const s of seeded.servers) progress.done(s.server, !s.error, s.error)
          return seeded
        },
      )
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
    this.log(`Photo map: ${n(r.mapped)} mappings written (capacity ${n(r.photoMap.capacity)}, ${n(r.photoMap.buckets)} buckets).`)
    if (r.skippedPhotos > 0) this.log(`${n(r.skippedPhotos)} generated photo id(s) already existed (an earlier seed) and were skipped.`)
    for (const w of r.warnings) this.warn(w)
  }
}

function seedProgressText(p: SeedProgress): string {
  const n = (x: number) => x.toLocaleString('en-US')
  return (
    `${p.shardsDone}/${p.shards} shards, ${n(p.users)} users, ${n(p.photos)} photos, ${n(p.follows)} follows` +
    (p.shardsDone === p.shards ? `, ${p.shardsVacuumed}/${p.shards} vacuumed` : '')
  )
}
