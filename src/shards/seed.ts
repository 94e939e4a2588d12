import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import type {Redis} from 'ioredis'
import pMap from 'p-map'
import type pg from 'pg'
import {from as copyFrom} from 'pg-copy-streams'

import type {ShardsSettings} from '../config/schema.js'
import {UserError, errorText} from '../errors.js'
import {quoteIdent, SHARD_TABLES} from './ddl.js'
import {encodeId, MAX_SEQ} from './ids.js'
import {openShardWorld, type ShardWorld} from './photo-map-shards.js'
import {PhotoOwnerMap} from './photo-map.js'
import {schemaName, shardOfUser, shardOfUsername} from './placement.js'
import type {ServerPools} from './pools.js'

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
export interface SeedOptions {
  users: number
  photos: number
  /** Median follows per user (default 30). */
  followsMedian?: number
  /** Photo times are spread over this many days up to now (default 182). */
  days?: number
  /** Rows per COPY statement (default 100,000). */
  batch?: number
  /** Concurrent shard loads per physical server (default 2). */
  connections?: number
  /** "Now" in ms since 1970 (default Date.now()); photo times end one minute before it. */
  now?: number
}

export const SEED_LIMITS = {users: 10_000_000, photos: 100_000_000, followsMedian: 10_000, days: 3650} as const
const FOLLOW_SIGMA = 1.1
/** Share of follow picks made by popularity rank (the rest are uniform). */
const POPULAR_SHARE = 0.7
/** Zipf-like ranks: log-uniform over [ZIPF_OFFSET, users + ZIPF_OFFSET). */
const ZIPF_OFFSET = 10

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

export interface SeedServerResult {
  server: string
  shards: number
  users: number
  photos: number
  follows: number
  error?: string
}

export interface Distribution {
  median: number
  p90: number
  p99: number
  max: number
}

export interface SeedResult {
  users: number
  photos: number
  follows: number
  /** Photos whose generated id already existed (from an earlier seed) and were skipped. */
  skippedPhotos: number
  /** Photo→owner mappings written to Redis. */
  mapped: number
  userIds: {first: string; last: string} | null
  photoTimes: {from: string; to: string} | null
  followsPerUser: Distribution
  followersPerUser: Distribution
  photosPerUser: Distribution
  logical: number
  servers: SeedServerResult[]
  photoMap: {capacity: number; buckets: number}
  warnings: string[]
  seconds: number
}

interface Plan {
  world: ShardWorld
  userIds: Float64Array
  /** Per shard: indexes into userIds. */
  usersByShard: Uint32Array[]
  /** Per shard: indexes of the users whose username's claim lives there (shardOfUsername of `user<id>`). */
  claimsByShard: Uint32Array[]
  /** Per shard: owner indexes of its photos. */
  photosByShard: Uint32Array[]
  followCounts: Uint32Array
  followerCounts: Uint32Array
  popular: Uint32Array
  start: number
  end: number
}

export function validateSeedOptions(opts: SeedOptions): Required<Omit<SeedOptions, 'now'>> & {now: number} {
  const o = {
    users: opts.users,
    photos: opts.photos,
    followsMedian: opts.followsMedian ?? 30,
    days: opts.days ?? 182,
    batch: opts.batch ?? 100_000,
    connections: opts.connections ?? 2,
    now: opts.now ?? Date.now(),
  }
  const check = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new UserError(`--${name} ${v} is out of range (${min}..${max.toLocaleString('en-US')}).`, {
        fix: `Pass --${name} as a whole number between ${min} and ${max}.`,
      })
    }
  }
  check('users', o.users, 1, SEED_LIMITS.users)
  check('photos', o.photos, 0, SEED_LIMITS.photos)
  check('follows-median', o.followsMedian, 0, SEED_LIMITS.followsMedian)
  check('days', o.days, 1, SEED_LIMITS.days)
  check('batch', o.batch, 100, 1_000_000)
  check('connections', o.connections, 1, 16)
  return o
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
  const layout = await photoMap.layout()
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

  const total = (k: 'users' | 'photos' | 'follows') => servers.reduce((a, s) => a + s[k], 0)
  const photosPerUser = new Uint32Array(userIds.length)
  for (const list of plan.photosByShard) for (const owner of list) photosPerUser[owner]!++
  const held = await photoMap.estimateMappings()
  if (held > layout.capacity) {
    warnings.push(
      `The photo map now holds about ${held} mappings, more than its capacity ${layout.capacity}; rebuild it larger with \`feedops shards reindex-photos --capacity ${Math.ceil((held * 2) / 1e6) * 1e6}\`.`,
    )
  }
  return {
    users: total('users'),
    photos: total('photos'),
    follows: total('follows'),
    skippedPhotos,
    mapped,
    userIds: userIds.length ? {first: String(userIds[0]), last: String(userIds[userIds.length - 1])} : null,
    photoTimes: opts.photos > 0 ? {from: new Date(plan.start).toISOString(), to: new Date(plan.end).toISOString()} : null,
    followsPerUser: distribution(plan.followCounts),
    followersPerUser: distribution(plan.followerCounts),
    photosPerUser: distribution(photosPerUser),
    logical: world.logical,
    servers,
    photoMap: {capacity: layout.capacity, buckets: layout.buckets},
    warnings,
    seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
  }
}

function makePlan(world: ShardWorld, userIds: Float64Array, opts: ReturnType<typeof validateSeedOptions>): Plan {
  const n = userIds.length
  const shardOf = new Uint16Array(n)
  const perShard = new Uint32Array(world.logical)
  for (let i = 0; i < n; i++) {
    shardOf[i] = shardOfUser(BigInt(userIds[i]!), world.logical)
    perShard[shardOf[i]!]!++
  }
  const usersByShard = groupByShard(n, (i) => shardOf[i]!, perShard)
  const nameShardOf = new Uint16Array(n)
  const perNameShard = new Uint32Array(world.logical)
  for (let i = 0; i < n; i++) {
    nameShardOf[i] = shardOfUsername(`user${userIds[i]}`, world.logical)
    perNameShard[nameShardOf[i]!]!++
  }
  const claimsByShard = groupByShard(n, (i) => nameShardOf[i]!, perNameShard)

  // follow counts: lognormal around the median, capped by the number of other users
  const followCounts = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    followCounts[i] = Math.min(n - 1, Math.round(opts.followsMedian * Math.exp(FOLLOW_SIGMA * gaussian())))
  }
  // popularity: a random order of users; rank r is picked with probability ∝ 1/(r + ZIPF_OFFSET)
  const popular = new Uint32Array(n)
  for (let i = 0; i < n; i++) popular[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    const t = popular[i]!
    popular[i] = popular[j]!
    popular[j] = t
  }

  // photo owners: index ∝ r², so low indexes (older users) post more
  const owners = new Uint32Array(opts.photos)
  const photosPerShard = new Uint32Array(world.logical)
  for (let p = 0; p < opts.photos; p++) {
    const r = Math.random()
    owners[p] = Math.min(n - 1, Math.floor(n * r * r))
    photosPerShard[shardOf[owners[p]!]!]!++
  }
  const photosByShard = groupByShard(opts.photos, (p) => shardOf[owners[p]!]!, photosPerShard).map((idx) => idx.map((p) => owners[p]!))
  const end = opts.now - 60_000
  return {
    world,
    userIds,
    usersByShard,
    claimsByShard,
    photosByShard,
    followCounts,
    followerCounts: new Uint32Array(n),
    popular,
    start: end - opts.days * 86_400_000,
    end,
  }
}

function groupByShard(n: number, shardOf: (i: number) => number, counts: Uint32Array): Uint32Array[] {
  const out = Array.from(counts, (c) => new Uint32Array(c))
  const fill = new Uint32Array(counts.length)
  for (let i = 0; i < n; i++) {
    const s = shardOf(i)
    out[s]![fill[s]!++] = i
  }
  return out
}

function gaussian(): number {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())
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
  opts: ReturnType<typeof validateSeedOptions>,
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

/** Distinct users `f` follows (never itself), sorted so the primary key is written in order. */
function pickFollowees(f: number, plan: Plan, marks: Int32Array): number[] {
  const n = plan.userIds.length
  const want = plan.followCounts[f]!
  const picked: number[] = []
  marks[f] = f
  const logSpan = Math.log((n + ZIPF_OFFSET) / ZIPF_OFFSET)
  for (let attempts = 0; picked.length < want && attempts < want * 20 + 100; attempts++) {
    let t: number
    if (Math.random() < POPULAR_SHARE) {
      const rank = Math.floor(ZIPF_OFFSET * Math.exp(Math.random() * logSpan)) - ZIPF_OFFSET
      t = plan.popular[Math.min(n - 1, rank)]!
    } else {
      t = Math.floor(Math.random() * n)
    }
    if (marks[t] === f) continue
    marks[t] = f
    picked.push(t)
  }
  plan.followCounts[f] = picked.length
  return picked.sort((a, b) => plan.userIds[a]! - plan.userIds[b]!)
}

export interface PhotoRows {
  ids: bigint[]
  owners: Uint32Array
  /** ms since 1970 of each photo (= the id's time). */
  times: Float64Array
  userIds: Float64Array
}

/** Ids in time order for one shard's photos (see the module comment for the sequence rule). */
function photoRows(shard: number, owners: Uint32Array, plan: Plan): PhotoRows {
  const n = owners.length
  const times = new Float64Array(n)
  for (let i = 0; i < n; i++) times[i] = Math.floor(plan.start + Math.random() * (plan.end - plan.start))
  times.sort()
  const epoch = Number(plan.world.epoch)
  const ids = new Array<bigint>(n)
  let lastMs = -1
  let lastSeq = 0
  for (let i = 0; i < n; i++) {
    let ms = times[i]! - epoch
    let seq: number
    if (ms > lastMs) {
      seq = Math.floor(Math.random() * 512)
    } else {
      ms = lastMs
      seq = lastSeq + 1
      if (seq > MAX_SEQ) {
        ms = lastMs + 1
        seq = 0
      }
    }
    lastMs = ms
    lastSeq = seq
    times[i] = ms + epoch
    ids[i] = encodeId({msSinceEpoch: BigInt(ms), shard, seq})
  }
  return {ids, owners, times, userIds: plan.userIds}
}

const UNIQUE_VIOLATION = '23505'

/** Rows from..to-1 by COPY; if an id already exists, again with ON CONFLICT DO NOTHING. Returns the row indexes inserted. */
export async function insertPhotos(client: pg.PoolClient, s: string, rows: PhotoRows, from: number, to: number): Promise<number[]> {
  const all = Array.from({length: to - from}, (_, i) => from + i)
  try {
    await copyRows(client, `COPY ${s}.photos (id, user_id, caption, s3_key, created_at) FROM STDIN`, to - from, function* () {
      for (let k = from; k < to; k++) yield photoLine(rows, k)
    })
    return all
  } catch (err) {
    if ((err as {code?: string}).code !== UNIQUE_VIOLATION) throw err
  }
  const inserted = new Set<string>()
  for (let i = from; i < to; i += 10_000) {
    const ks = all.slice(i - from, i - from + 10_000)
    const r = await client.query<{id: string}>(
      `INSERT INTO ${s}.photos (id, user_id, caption, s3_key, created_at)
       SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[])
       ON CONFLICT (id) DO NOTHING RETURNING id::text`,
      [
        ks.map((k) => rows.ids[k]!.toString()),
        ks.map((k) => String(rowsUser(rows, k))),
        ks.map((k) => caption(rows, k)),
        ks.map((k) => s3Key(rows, k)),
        ks.map((k) => new Date(rows.times[k]!).toISOString()),
      ],
    )
    for (const row of r.rows) inserted.add(row.id)
  }
  return all.filter((k) => inserted.has(rows.ids[k]!.toString()))
}

function rowsUser(rows: PhotoRows, k: number): number {
  return rows.userIds[rows.owners[k]!]!
}
function caption(rows: PhotoRows, k: number): string {
  return `photo ${k + 1} of shard ${Number((rows.ids[k]! >> 10n) & 8191n)}`
}
function s3Key(rows: PhotoRows, k: number): string {
  return `photos/${rowsUser(rows, k)}/${rows.ids[k]}.jpg`
}
function photoLine(rows: PhotoRows, k: number): string {
  return `${rows.ids[k]}\t${rowsUser(rows, k)}\t${caption(rows, k)}\t${s3Key(rows, k)}\t${new Date(rows.times[k]!).toISOString()}\n`
}

/** Streams generated lines into one COPY … FROM STDIN, in ~256 kB chunks; returns the rows copied. */
async function copyRows(client: pg.PoolClient, sql: string, expected: number, lines: () => Iterable<string>): Promise<number> {
  if (expected === 0) return 0
  const stream = client.query(copyFrom(sql))
  function* chunks(): Generator<string> {
    let buf = ''
    for (const line of lines()) {
      buf += line
      if (buf.length > 262_144) {
        yield buf
        buf = ''
      }
    }
    if (buf) yield buf
  }
  await pipeline(Readable.from(chunks(), {objectMode: false}), stream)
  return Number(stream.rowCount ?? expected)
}

/**
 * Runs fn on a connection of its own that commits synchronously. The lab's servers run with
 * synchronous_commit off, and Postgres keeps one "flushed yet?" mark per group of 32 transaction ids, which
 * any later asynchronous commit in the group moves on. Until the WAL is flushed past it, no row of the group
 * gets its committed hint bit, and VACUUM marks no page holding such a row all-visible: the seed's reads
 * would then plan without index-only scans. Synchronous commits leave the mark alone.
 */
async function withSyncCommit<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let failed: Error | undefined
  try {
    await client.query('SET synchronous_commit = on')
    const out = await fn(client)
    await client.query('RESET synchronous_commit')
    return out
  } catch (err) {
    failed = err instanceof Error ? err : new Error(String(err))
    throw err
  } finally {
    client.release(failed) // after a failure the session's state is unknown: closed, not pooled
  }
}

function distribution(values: Uint32Array): Distribution {
  if (values.length === 0) return {median: 0, p90: 0, p99: 0, max: 0}
  const s = Uint32Array.from(values).sort()
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!
  return {median: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1]!}
}
