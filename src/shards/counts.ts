import type {Redis} from 'ioredis'
import pMap from 'p-map'
import type pg from 'pg'
import {to as copyTo} from 'pg-copy-streams'

import type {ShardsSettings} from '../config/schema.js'
import {errorText} from '../errors.js'
import {validateBatchOptions} from './batch-options.js'
import {quoteIdent} from './ddl.js'
import {openShardWorld} from './photo-map/shards.js'
import {schemaName} from './placement.js'
import type {ServerPools} from './pools.js'

/**
 * Follower and following counts. Postgres is the truth: an edge lives in the follower's shard, so a
 * user's following count is a count in their own shard but their followers are spread over every shard.
 * Redis holds both counts as a cache (`feedops:followers:<id>`, `feedops:following:<id>`, no key = 0),
 * which the app moves by one only when Postgres reported that an edge was really added or removed, and
 * which `recountFollows` (`feedops shards recount`, and the end of `lab seed`) rebuilds from Postgres.
 * Likes per photo need no cache: they sit beside the photo and are counted with it.
 */
export const followersKey = (id: bigint | number | string): string => `feedops:followers:${id}`
export const followingKey = (id: bigint | number | string): string => `feedops:following:${id}`

/** Both counts of each user, from Redis (one MGET); a missing key is 0. */
export async function readFollowCounts(redis: Redis, ids: readonly bigint[]): Promise<{followers: number; following: number}[]> {
  if (ids.length === 0) return []
  const values = await redis.mget(...ids.map(followersKey), ...ids.map(followingKey))
  return ids.map((_, i) => ({followers: Math.max(0, Number(values[i] ?? 0)), following: Math.max(0, Number(values[ids.length + i] ?? 0))}))
}

/** Moves both counts of one edge by `delta` (+1 a new edge, -1 a removed one), in one round trip. */
export async function moveFollowCounts(redis: Redis, followerId: bigint, followeeId: bigint, delta: 1 | -1): Promise<void> {
  const results = await redis.multi().incrby(followersKey(followeeId), delta).incrby(followingKey(followerId), delta).exec()
  for (const [err] of results ?? []) if (err) throw err
}

export interface RecountOptions {
  /** Users per Redis pipeline (default 10,000). */
  batch?: number
  /** Shards read at once per physical server (default 2). */
  concurrency?: number
}

export interface RecountProgress {
  server: string
  phase: 'followers' | 'write'
  shardsDone: number
  shards: number
  users: number
}

export interface RecountServerResult {
  server: string
  shards: number
  users: number
  error?: string
}

export interface RecountResult {
  complete: boolean
  /** Users whose counts were written. */
  users: number
  /** Follow edges counted. */
  follows: number
  servers: RecountServerResult[]
  seconds: number
}

export const RECOUNT_DEFAULT_BATCH = 10_000

export function validateRecountOptions(opts: RecountOptions): {batch: number; concurrency: number} {
  return validateBatchOptions(opts, {batch: RECOUNT_DEFAULT_BATCH, unit: 'users per pipeline'})
}

/**
 * Rebuilds every user's two counts in Redis from Postgres, streaming:
 *   1. every shard's follows, grouped by followee (COPY … TO STDOUT), summed into one array indexed by
 *      user id (ids come from the catalog's sequence: 4 bytes per id ever given out);
 *   2. every shard's users with their following count, written with the followers from step 1 in
 *      pipelines of `batch` users (SET, or DEL for 0).
 * Physical servers in parallel, `concurrency` shards at a time on each. Step 2 starts once every server
 * finished step 1; a server that fails is reported and its users are left as they were. The app's own
 * moves during a recount are kept except when one lands between a shard's count and its write (the
 * count then misses it or has it twice): run it again, or when writes are quiet, to be exact.
 */
export async function recountFollows(
  pools: ServerPools,
  settings: ShardsSettings,
  redis: Redis,
  options: RecountOptions = {},
  onProgress?: (p: RecountProgress) => void,
): Promise<RecountResult> {
  const started = performance.now()
  const opts = validateRecountOptions(options)
  const world = await openShardWorld(pools, settings)
  const seq = await pools.catalog.query<{last: string; called: boolean}>('SELECT last_value::text AS last, is_called AS called FROM user_id_seq')
  const maxId = seq.rows[0]!.called ? Number(seq.rows[0]!.last) : 0
  if (maxId > 2 ** 31) throw new RangeError(`User ids up to ${maxId}: recount keeps one counter per id given out and supports up to 2^31.`)
  const followers = new Uint32Array(maxId + 1)
  let follows = 0
  const servers = [...world.byServer].map(([server, shards]): RecountServerResult => ({server, shards: shards.length, users: 0}))

  const eachShard = (phase: RecountProgress['phase'], work: (client: pg.PoolClient, shard: number, r: RecountServerResult) => Promise<void>) =>
    Promise.all(
      servers.map(async (r) => {
        if (r.error) return
        const shards = world.byServer.get(r.server)!
        let done = 0
        const report = () => onProgress?.({server: r.server, phase, shardsDone: done, shards: shards.length, users: r.users})
        report()
        try {
          await pMap(
            shards,
            async (shard) => {
              const client = await pools.pool(r.server).connect()
              try {
                await work(client, shard, r)
              } finally {
                client.release()
              }
              done++
              report()
            },
            {concurrency: opts.concurrency},
          )
        } catch (err) {
          r.error = errorText(err)
        }
      }),
    )

  await eachShard('followers', async (client, shard) => {
    const s = quoteIdent(schemaName(shard))
    await copyLines(client, `COPY (SELECT followee_id, count(*) FROM ${s}.follows GROUP BY followee_id) TO STDOUT`, (line) => {
      const tab = line.indexOf('\t')
      const id = Number(line.slice(0, tab))
      const n = Number(line.slice(tab + 1))
      follows += n
      if (id >= 0 && id <= maxId) followers[id] = followers[id]! + n
    })
  })

  const failedCounting = servers.some((r) => r.error)
  if (!failedCounting) {
    await eachShard('write', async (client, shard, r) => {
      const s = quoteIdent(schemaName(shard))
      let pipe = redis.pipeline()
      let queued = 0
      const flush = async () => {
        const [sent, n] = [pipe, queued]
        pipe = redis.pipeline()
        queued = 0
        for (const [err] of (await sent.exec()) ?? []) if (err) throw err
        r.users += n
      }
      const pending: Promise<void>[] = []
      await copyLines(
        client,
        `COPY (SELECT u.id, (SELECT count(*) FROM ${s}.follows f WHERE f.follower_id = u.id) FROM ${s}.users u) TO STDOUT`,
        (line) => {
          const tab = line.indexOf('\t')
          const id = line.slice(0, tab)
          const following = Number(line.slice(tab + 1))
          const n = followers[Number(id)] ?? 0
          if (n > 0) pipe.set(followersKey(id), n)
          else pipe.del(followersKey(id))
          if (following > 0) pipe.set(followingKey(id), following)
          else pipe.del(followingKey(id))
          if (++queued >= opts.batch) pending.push(flush())
        },
      )
      pending.push(flush())
      await Promise.all(pending)
    })
  }
  return {
    complete: servers.every((r) => !r.error),
    users: servers.reduce((a, r) => a + r.users, 0),
    follows,
    servers,
    seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
  }
}

/** Runs a COPY … TO STDOUT and hands each text line (without its newline) to onLine. */
async function copyLines(client: pg.PoolClient, sql: string, onLine: (line: string) => void): Promise<void> {
  const stream = client.query(copyTo(sql))
  let rest = ''
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const text = rest + chunk.toString('utf8')
    let start = 0
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      onLine(text.slice(start, nl))
      start = nl + 1
    }
    rest = text.slice(start)
  }
  if (rest) onLine(rest)
}
