import type {Redis} from 'ioredis'
import pMap from 'p-map'
import type pg from 'pg'

import type {ShardsSettings} from '../../config/schema.js'
import {errorText} from '../../errors.js'
import {recountFollows} from '../counts.js'
import {quoteIdent, SHARD_TABLES} from '../ddl.js'
import {PhotoOwnerMap} from '../photo-map/map.js'
import {openShardWorld} from '../photo-map/shards.js'
import {schemaName} from '../placement.js'
import type {ServerPools} from '../pools.js'
import {copyRows, insertPhotos, withSyncCommit} from './copy.js'
import {validateSeedOptions, type SeedOptions, type ValidSeedOptions} from './options.js'
import {makePlan, photoRows, pickFollowees, type Plan} from './plan.js'
import {summarize, type SeedResult, type SeedServerResult} from './summary.js'

export {insertPhotos} from './copy.js'
export {SEED_LIMITS, validateSeedOptions, type SeedOptions} from './options.js'
export type {Distribution, SeedResult, SeedServerResult} from './summary.js'

/**
 * `feedops lab seed`: realistic users, follows and photos in every logical shard, fast.
 *
 * - Users take ids from the catalog's user id sequence and live in shardOfUser(id).
 * - Follow counts are lognormal (median `followsMedian`, σ 1.1: most follow a few dozen, a few follow
 *   thousands); whom they follow mixes uniform picks with a Zipf-like popularity ranking, so a few users
 *   are followed by a large share of everyone. Follows are stored in the follower's shard.
 * - Photo owners are skewed (some users post much more); photo times are uniform over the last `days`;
 *   each id is encodeId(its created_at, its owner's shard, a per-shard sequence), so ids sort by time
 *   and decode to the row's created_at and shard. Within a shard, ids are assigned in time order: a new
 *   millisecond starts at a random sequence in 0..511 (so a second seed rarely meets the first's ids),
 *   more photos in that ms count up, and past 1023 the id moves to the next ms (created_at with it).
 * - Rows go in with COPY, per shard in batches of `batch` rows, `connections` shards at a time per
 *   physical server, all servers in parallel; the photo→owner map in Redis is filled as photos land.
 *   Once a server's shards are loaded, each is vacuumed and analyzed (see withSyncCommit for why it
 *   commits synchronously), so the app's reads plan index-only scans as on a running system.
 * Seeding again adds more users and photos. Photo ids can meet an earlier seed's (same shard, ms and
 * sequence); such a batch is re-inserted with ON CONFLICT DO NOTHING and the clashing photos skipped
 * (counted), so uniqueness always holds and the photo map is written only for rows that went in.
 */
export interface SeedProgress {
  server: string
  shardsDone: number
  /** Shards whose tables were vacuumed and analyzed, once the server's loading is over. */
  shardsVacuumed: number
  shards: number
  users: number
  photos: number
  follows: number
}

export async function seedLab(
  pools: ServerPools,
  settings: ShardsSettings,
  redis: Redis,
  options: SeedOptions,
  onProgress?: (p: SeedProgress) => void,
): Promise<SeedResult> {
  const started = performance.now()
  const opts = validateSeedOptions(options)
  const world = await openShardWorld(pools, settings, {requireActive: true})
  const photoMap = new PhotoOwnerMap(redis)
  const {warnings} = await photoMap.checkLimits()

  const ids = await pools.catalog.query<{id: string}>("SELECT nextval('user_id_seq')::text AS id FROM generate_series(1, $1)", [opts.users])
  const userIds = Float64Array.from(ids.rows, (r) => Number(r.id))
  if (userIds[userIds.length - 1]! > Number.MAX_SAFE_INTEGER) throw new RangeError('User ids beyond 2^53 are not supported by the seeder.')
  const plan = makePlan(world, userIds, opts)

  let mapped = 0
  let skippedPhotos = 0
  const servers = await Promise.all(
    [...world.byServer].map(async ([server, shards]): Promise<SeedServerResult> => {
      const result: SeedServerResult = {server, shards: shards.length, users: 0, photos: 0, follows: 0}
      let done = 0
      let vacuumed = 0
      const report = () =>
        onProgress?.({server, shardsDone: done, shardsVacuumed: vacuumed, shards: shards.length, users: result.users, photos: result.photos, follows: result.follows})
      report()
      try {
        await pMap(
          shards,
          async (shard) => {
            const add = (kind: keyof ShardSeeded, count: number) => {
              if (kind === 'mapped') mapped += count
              else if (kind === 'skipped') skippedPhotos += count
              else result[kind] += count
              report()
            }
            await withSyncCommit(pools.pool(server), (client) => seedShard(client, shard, plan, opts, photoMap, add))
            done++
            report()
          },
          {concurrency: opts.connections},
        )
        // Bulk-loaded tables have no statistics and no visibility map until autovacuum gets to them; the
        // app's reads (index-only scans) and plans should see them as a running system would. VACUUM marks
        // a page all-visible only when every row's insert is older than any open transaction: so after the
        // server's loading, not beside another shard's COPY.
        await pMap(
          shards,
          async (shard) => {
            const tables = SHARD_TABLES.map((t) => `${quoteIdent(schemaName(shard))}.${t}`).join(', ')
            await withSyncCommit(pools.pool(server), (client) => client.query(`VACUUM (ANALYZE) ${tables}`))
            vacuumed++
            report()
          },
          {concurrency: opts.connections},
        )
      } catch (err) {
        result.error = errorText(err)
      }
      return result
    }),
  )

  const state = await photoMap.state()
  // The follow counts in Redis are a cache of Postgres: rebuilt from what went in, old rows included.
  const recount = await recountFollows(pools, settings, redis, {concurrency: opts.connections})
  if (!recount.complete) warnings.push(`The follow counts were not rebuilt on every server; run \`feedops shards recount\`.`)
  return summarize(plan, opts, servers, {
    skippedPhotos,
    mapped,
    photoMap: {mappings: state.mappings, buckets: state.buckets},
    counts: {users: recount.users, follows: recount.follows},
    warnings,
    seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
  })
}

interface ShardSeeded {
  users: number
  photos: number
  follows: number
  mapped: number
  skipped: number
}

async function seedShard(
  client: pg.PoolClient,
  shard: number,
  plan: Plan,
  opts: ValidSeedOptions,
  photoMap: PhotoOwnerMap,
  add: (kind: keyof ShardSeeded, count: number) => void,
): Promise<void> {
  const s = quoteIdent(schemaName(shard))
  const users = plan.usersByShard[shard]!
  const userCreated = new Date(plan.start - 30 * 86_400_000).toISOString()

  // users (ids from the sequence: never clash)
  for (let i = 0; i < users.length; i += opts.batch) {
    const slice = users.subarray(i, i + opts.batch)
    const copied = await copyRows(client, `COPY ${s}.users (id, username, name, created_at) FROM STDIN`, slice.length, function* () {
      for (const u of slice) {
        const id = plan.userIds[u]!
        yield `${id}\tuser${id}\tUser ${id}\t${userCreated}\n`
      }
    })
    add('users', copied)
  }
  // the claims of the usernames placed here (the app's signups check them)
  const claims = plan.claimsByShard[shard]!
  for (let i = 0; i < claims.length; i += opts.batch) {
    const slice = claims.subarray(i, i + opts.batch)
    await copyRows(client, `COPY ${s}.usernames (username, user_id) FROM STDIN`, slice.length, function* () {
      for (const u of slice) yield `user${plan.userIds[u]!}\t${plan.userIds[u]!}\n`
    })
  }

  // photos, in time order per shard
  const photos = plan.photosByShard[shard]!
  if (photos.length > 0) {
    const rows = photoRows(shard, photos, plan)
    for (let i = 0; i < rows.ids.length; i += opts.batch) {
      const to = Math.min(rows.ids.length, i + opts.batch)
      const inserted = await insertPhotos(client, s, rows, i, to)
      add('photos', inserted.length)
      if (inserted.length < to - i) add('skipped', to - i - inserted.length)
      for (let j = 0; j < inserted.length; j += 20_000) {
        const chunk = inserted.slice(j, j + 20_000)
        await photoMap.setMany(chunk.map((k) => [rows.ids[k]!, BigInt(plan.userIds[rows.owners[k]!]!)]))
        add('mapped', chunk.length)
      }
    }
  }

  // follows, in the follower's shard, generated as they stream
  const marks = new Int32Array(plan.userIds.length).fill(-1)
  let u = 0
  while (u < users.length) {
    let rowsInBatch = 0
    const fromUser = u
    while (u < users.length && (rowsInBatch === 0 || rowsInBatch + plan.followCounts[users[u]!]! <= opts.batch)) {
      rowsInBatch += plan.followCounts[users[u]!]!
      u++
    }
    const batchUsers = users.subarray(fromUser, u)
    if (rowsInBatch === 0) continue
    const follows = await copyRows(client, `COPY ${s}.follows (follower_id, followee_id) FROM STDIN`, rowsInBatch, function* () {
      for (const f of batchUsers) {
        for (const t of pickFollowees(f, plan, marks)) {
          plan.followerCounts[t]!++
          yield `${plan.userIds[f]}\t${plan.userIds[t]}\n`
        }
      }
    })
    add('follows', follows)
  }
}

