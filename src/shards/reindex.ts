import {randomUUID} from 'node:crypto'

import type {Redis} from 'ioredis'
import pMap from 'p-map'
import type pg from 'pg'

import type {ShardsSettings} from '../config/schema.js'
import {ExitCode, UserError, errorText} from '../errors.js'
import {validateBatchOptions} from './batch-options.js'
import {quoteIdent} from './ddl.js'
import {encodeId} from './ids.js'
import {PhotoOwnerMap, type MapState} from './photo-map/map.js'
import {openShardWorld, type ShardWorld} from './photo-map/shards.js'
import {schemaName} from './placement.js'
import type {ServerPools} from './pools.js'

/**
 * `feedops shards reindex-photos`: rebuilds the Redis photo→owner map from Postgres.
 *
 * The map is built into a new generation of bucket keys (`pm:<generation+1>:…`, growing as it fills), so
 * readers keep the old one until the new one is complete:
 *   1. every shard's photos are streamed by keyset pagination on id (`WHERE id > last ORDER BY id LIMIT
 *      batch`), physical servers in parallel, a few shards at a time per server, each page written with
 *      one Redis pipeline;
 *   2. the new generation is activated (every script reads the active one itself, so the app's next write
 *      goes there), then photos made since the rebuild began (id ≥ an id of its start time minus a minute)
 *      are copied again, so writes that went to the old generation meanwhile are not lost;
 *   3. the old generation is deleted (SCAN + UNLINK).
 * When Redis has no generation at all (empty or flushed), the new one is activated first so the app writes
 * into it while it fills. A failed server leaves the old map in place (the partial generation is deleted).
 * One rebuild at a time: a Redis lock key (expiring) guards it.
 */
export interface ReindexOptions {
  /** Photos per page and per Redis pipeline (default 10,000). */
  batch?: number
  /** Shards streamed at once per physical server (default 2). */
  concurrency?: number
}

export interface ReindexProgress {
  server: string
  shardsDone: number
  shards: number
  photos: number
}

export interface ReindexServerResult {
  server: string
  shards: number
  photos: number
  error?: string
}

export interface ReindexResult {
  complete: boolean
  /** Photos written in the main pass. */
  photos: number
  /** Photos written again after the switch (made while the rebuild ran). */
  caughtUp: number
  /** The active generation's state afterwards. */
  state: MapState
  /** The generation that was active before, if any. */
  previous: number | null
  /** Keys of the previous generation deleted (or of the partial new one, after a failure). */
  droppedKeys: number
  servers: ReindexServerResult[]
  stats: {mappings: number; bucketKeys: number; overflowKeys: number; meanFill: number; maxFill: number; notListpack: number} | null
  warnings: string[]
  seconds: number
}

export const REINDEX_DEFAULT_BATCH = 10_000
const LOCK_TTL_MS = 60_000

export function validateReindexOptions(opts: ReindexOptions): {batch: number; concurrency: number} {
  return validateBatchOptions(opts, {batch: REINDEX_DEFAULT_BATCH, unit: 'photos per page'})
}

export async function reindexPhotos(
  pools: ServerPools,
  settings: ShardsSettings,
  redis: Redis,
  options: ReindexOptions = {},
  onProgress?: (p: ReindexProgress) => void,
): Promise<ReindexResult> {
  const started = performance.now()
  const opts = validateReindexOptions(options)
  const world = await openShardWorld(pools, settings)
  const map = new PhotoOwnerMap(redis)
  const lockKey = `${map.prefix}:reindex-lock`
  const token = randomUUID()
  if ((await redis.set(lockKey, token, 'PX', LOCK_TTL_MS, 'NX')) !== 'OK') {
    throw new UserError('Another photo map rebuild is running (its Redis lock is held).', {
      fix: `Wait for it to finish; if it died, the lock ${lockKey} expires within a minute.`,
      exitCode: ExitCode.nothingDone,
    })
  }
  const keepLock = setInterval(() => {
    void redis.eval(EXTEND_LOCK_LUA, 1, lockKey, token, String(LOCK_TTL_MS)).catch(() => undefined)
  }, LOCK_TTL_MS / 3)
  try {
    const {warnings} = await map.checkLimits()
    const previous = await map.activeGeneration()
    const generation = (previous ?? 0) + 1
    await map.dropGeneration(generation) // left over by a rebuild that died
    if (previous === null) await map.activate(generation)
    // Ids made by next_id() from here on are ≥ this one (a minute of slack for clocks).
    const sinceMs = BigInt(Date.now() - 60_000) - world.epoch
    const sinceId = encodeId({msSinceEpoch: sinceMs > 0n ? sinceMs : 0n, shard: 0, seq: 0})

    const servers = await streamAll(pools, world, map, generation, opts, null, onProgress)
    const complete = servers.every((s) => !s.error)
    let caughtUp = 0
    let droppedKeys = 0
    if (!complete) {
      if (previous !== null) droppedKeys = await map.dropGeneration(generation)
    } else if (previous !== null) {
      await map.activate(generation)
      const again = await streamAll(pools, world, map, generation, opts, sinceId)
      caughtUp = again.reduce((a, s) => a + s.photos, 0)
      const failed = again.filter((s) => s.error)
      if (failed.length > 0) warnings.push(`Catching up recent photos failed on ${failed.map((s) => `${s.server}: ${s.error}`).join('; ')}.`)
      droppedKeys = await map.dropGeneration(previous)
    }
    const stats = complete ? await map.stats() : null
    if (stats) warnings.push(...stats.warnings.filter((w) => !warnings.includes(w)))
    return {
      complete,
      photos: servers.reduce((a, s) => a + s.photos, 0),
      caughtUp,
      state: await map.state(),
      previous,
      droppedKeys,
      servers,
      stats: stats && {
        mappings: stats.mappings,
        bucketKeys: stats.bucketKeys,
        overflowKeys: stats.overflowKeys,
        meanFill: Number(stats.meanFill.toFixed(2)),
        maxFill: stats.maxFill,
        notListpack: stats.notListpack,
      },
      warnings,
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
    }
  } finally {
    clearInterval(keepLock)
    await redis.eval(RELEASE_LOCK_LUA, 1, lockKey, token).catch(() => undefined)
  }
}

const EXTEND_LOCK_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`
const RELEASE_LOCK_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`

/** Every shard's photos (id > sinceId when given) into `generation`; servers in parallel, never throws per server. */
async function streamAll(
  pools: ServerPools,
  world: ShardWorld,
  map: PhotoOwnerMap,
  generation: number,
  opts: {batch: number; concurrency: number},
  sinceId: bigint | null,
  onProgress?: (p: ReindexProgress) => void,
): Promise<ReindexServerResult[]> {
  return Promise.all(
    [...world.byServer].map(async ([server, shards]): Promise<ReindexServerResult> => {
      const result: ReindexServerResult = {server, shards: shards.length, photos: 0}
      let done = 0
      const report = () => onProgress?.({server, shardsDone: done, shards: shards.length, photos: result.photos})
      report()
      try {
        await pMap(
          shards,
          async (shard) => {
            const client = await pools.pool(server).connect()
            try {
              await streamShard(client, shard, map, generation, opts.batch, sinceId, (n) => {
                result.photos += n
                report()
              })
            } finally {
              client.release()
            }
            done++
            report()
          },
          {concurrency: opts.concurrency},
        )
      } catch (err) {
        result.error = errorText(err)
      }
      return result
    }),
  )
}

/**
 * One shard's photos in id order, a page at a time (keyset: WHERE id > last). The next page is read
 * while the current one is written to Redis.
 */
async function streamShard(
  client: pg.ClientBase,
  shard: number,
  map: PhotoOwnerMap,
  generation: number,
  batch: number,
  sinceId: bigint | null,
  onPage: (photos: number) => void,
): Promise<void> {
  const sql = `SELECT id::text, user_id::text FROM ${quoteIdent(schemaName(shard))}.photos WHERE id > $1 ORDER BY id LIMIT $2`
  // Postgres shows ids past 2^63 as negative bigints; start below all of them.
  let after = sinceId === null ? '-9223372036854775808' : String(sinceId - 1n)
  let page = await client.query<{id: string; user_id: string}>(sql, [after, batch])
  while (page.rows.length > 0) {
    const rows = page.rows
    after = rows[rows.length - 1]!.id
    const pairs = rows.map((r) => [BigInt.asUintN(64, BigInt(r.id)), BigInt(r.user_id)] as [bigint, bigint])
    const next = rows.length === batch ? client.query<{id: string; user_id: string}>(sql, [after, batch]) : null
    const written = map.setMany(pairs, generation)
    const [nextPage] = await Promise.all([next, written])
    onPage(rows.length)
    if (!nextPage) break
    page = nextPage
  }
}
