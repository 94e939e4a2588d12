import {createHash} from 'node:crypto'

import type {ChainableCommander, Redis} from 'ioredis'

import {idAt, isLayout, layoutFor, LISTPACK_MAX_ENTRIES, locate, LONGEST_ELEMENT, type PhotoMapLayout} from './photo-map-layout.js'

export {layoutFor, TARGET_FILL, type PhotoMapLayout} from './photo-map-layout.js'

/**
 * Photo id → owner user id, in Redis hashes small enough to stay listpack-encoded (see
 * photo-map-layout.ts for the bucket design). The feed read learns each photo's owner here without
 * touching Postgres; the app calls set() on every photo write; `feedops shards reindex-photos`
 * rebuilds it from Postgres.
 *
 * The layout (bucket count, generation) is stored in Redis at `<prefix>:layout`, so every reader and
 * writer agrees on it without configuration; the first writer creates it from `capacity`. Instances
 * re-read it at most every `refreshMs`, which is how they follow a rebuild with a new capacity.
 */
export interface PhotoOwnerMapOptions {
  /** Key prefix (default "pm"). */
  prefix?: string
  /** Capacity of the layout created when Redis has none yet (default 10,000,000). */
  capacity?: number
  /** How long a loaded layout is trusted before it is read again (default 1000 ms). */
  refreshMs?: number
}

export interface PhotoMapStats {
  layout: PhotoMapLayout
  /** Bucket keys of the active generation (SCAN). */
  bucketKeys: number
  mappings: number
  meanFill: number
  maxFill: number
  /** Buckets Redis no longer keeps as listpack (each costs ~5× more). */
  notListpack: number
  limits: ListpackLimits | null
  warnings: string[]
}

export interface ListpackLimits {
  entries: number
  value: number
}

export const DEFAULT_CAPACITY = 10_000_000

/**
 * ARGV: key prefix of the generation, field width w, bucket numbers (4 bytes each, big-endian), fields
 * (w bytes each). Answers the owners joined by commas, empty where unknown. The keys are built in the
 * script (not passed as KEYS): fine on a single Redis, not on Redis Cluster.
 */
const GET_MANY_LUA = script(`local prefix, w, buckets, fields = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local out = {}
for i = 0, #buckets / 4 - 1 do
  local a, b, c, d = string.byte(buckets, 4 * i + 1, 4 * i + 4)
  local v = redis.call('HGET', prefix .. (((a * 256 + b) * 256 + c) * 256 + d), string.sub(fields, w * i + 1, w * i + w))
  out[i + 1] = v or ''
end
return table.concat(out, ',')`)

function script(lua: string): {lua: string; sha: string} {
  return {lua, sha: createHash('sha1').update(lua).digest('hex')}
}

export class PhotoOwnerMap {
  readonly prefix: string
  private readonly capacity: number
  private readonly refreshMs: number
  private cached: {layout: PhotoMapLayout; at: number} | null = null
  private loading: Promise<PhotoMapLayout> | null = null

  constructor(
    private readonly redis: Redis,
    opts: PhotoOwnerMapOptions = {},
  ) {
    this.prefix = opts.prefix ?? 'pm'
    this.capacity = opts.capacity ?? DEFAULT_CAPACITY
    this.refreshMs = opts.refreshMs ?? 1000
    layoutFor(this.capacity) // rejects a bad capacity now, not at the first write
  }

  get layoutKey(): string {
    return `${this.prefix}:layout`
  }

  bucketKey(layout: PhotoMapLayout, bucket: number): string {
    return `${this.prefix}:${layout.generation}:${bucket}`
  }

  /** The active layout; created from the capacity option when Redis has none. */
  async layout(): Promise<PhotoMapLayout> {
    if (this.cached && Date.now() - this.cached.at < this.refreshMs) return this.cached.layout
    this.loading ??= this.loadLayout().finally(() => {
      this.loading = null
    })
    return this.loading
  }

  private async loadLayout(): Promise<PhotoMapLayout> {
    let text = await this.redis.get(this.layoutKey)
    if (text === null) {
      await this.redis.set(this.layoutKey, JSON.stringify(layoutFor(this.capacity)), 'NX')
      text = await this.redis.get(this.layoutKey)
    }
    const layout = parseLayout(text, this.layoutKey)
    this.cached = {layout, at: Date.now()}
    return layout
  }

  /** The layout in Redis, or null when there is none (nothing written yet, or after FLUSHDB). */
  async storedLayout(): Promise<PhotoMapLayout | null> {
    const text = await this.redis.get(this.layoutKey)
    return text === null ? null : parseLayout(text, this.layoutKey)
  }

  /** Makes `layout` the active one (a rebuild calls this once the new generation is filled). */
  async activate(layout: PhotoMapLayout): Promise<void> {
    await this.redis.set(this.layoutKey, JSON.stringify(layout))
    this.cached = {layout, at: Date.now()}
  }

  async set(photoId: bigint, userId: bigint): Promise<void> {
    await this.setMany([[photoId, userId]])
  }

  /** Writes many mappings in one pipeline (one HSET per bucket touched). */
  async setMany(pairs: readonly (readonly [bigint, bigint])[], layout?: PhotoMapLayout): Promise<void> {
    if (pairs.length === 0) return
    const l = layout ?? (await this.layout())
    const pipe = this.redis.pipeline()
    this.queueSet(pipe, pairs, l)
    await execOrThrow(pipe)
  }

  /** Adds the HSETs of `pairs` to a pipeline the caller executes (bulk loaders batch several). */
  queueSet(pipe: ChainableCommander, pairs: readonly (readonly [bigint, bigint])[], layout: PhotoMapLayout): void {
    const fields = Buffer.allocUnsafe(pairs.length * layout.fieldBytes)
    const byBucket = new Map<number, (Buffer | string)[]>()
    for (let i = 0; i < pairs.length; i++) {
      const [photoId, userId] = pairs[i]!
      if (typeof userId !== 'bigint' || userId < 0n) throw new RangeError(`User id ${String(userId)} is not a non-negative integer.`)
      const off = i * layout.fieldBytes
      const bucket = locate(photoId, layout, fields, off)
      let args = byBucket.get(bucket)
      if (!args) byBucket.set(bucket, (args = []))
      args.push(fields.subarray(off, off + layout.fieldBytes), userId.toString())
    }
    for (const [bucket, args] of byBucket) pipe.hset(this.bucketKey(layout, bucket), ...args)
  }

  async get(photoId: bigint): Promise<bigint | null> {
    return (await this.getMany([photoId]))[0] ?? null
  }

  /**
   * Owners of many photos in one call; null where unknown. The lookups run in one server-side script
   * (one round trip, one command): a feed's ids fall in as many buckets as there are ids, and a pipeline
   * of one HMGET per bucket spent most of its time building and parsing commands in the client. The
   * script gets the bucket numbers and fields as two packed binary strings and answers one string.
   */
  async getMany(photoIds: readonly bigint[]): Promise<(bigint | null)[]> {
    if (photoIds.length === 0) return []
    const layout = await this.layout()
    const n = photoIds.length
    const fields = Buffer.allocUnsafe(n * layout.fieldBytes)
    const buckets = Buffer.allocUnsafe(n * 4)
    for (let i = 0; i < n; i++) buckets.writeUInt32BE(locate(photoIds[i]!, layout, fields, i * layout.fieldBytes), i * 4)
    const reply = (await this.evalScript(GET_MANY_LUA, 0, [
      `${this.prefix}:${layout.generation}:`,
      String(layout.fieldBytes),
      buckets,
      fields,
    ])) as string
    const values = reply.split(',')
    const out: (bigint | null)[] = new Array<bigint | null>(n)
    for (let i = 0; i < n; i++) {
      const v = values[i]
      out[i] = v ? BigInt(v) : null
    }
    return out
  }

  private async evalScript(script: {lua: string; sha: string}, numKeys: number, args: (string | Buffer)[]): Promise<unknown> {
    try {
      return await this.redis.evalsha(script.sha, numKeys, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return this.redis.eval(script.lua, numKeys, ...args)
    }
  }

  /** Removes a mapping; true when there was one. */
  async delete(photoId: bigint): Promise<boolean> {
    const layout = await this.layout()
    const field = Buffer.allocUnsafe(layout.fieldBytes)
    const bucket = locate(photoId, layout, field, 0)
    return (await this.redis.hdel(this.bucketKey(layout, bucket), field)) === 1
  }

  /** Every (photo id, user id) in one bucket, the ids decoded back from the fields. */
  async bucketEntries(bucket: number, layout?: PhotoMapLayout): Promise<[bigint, bigint][]> {
    const l = layout ?? (await this.layout())
    const flat = (await this.redis.callBuffer('HGETALL', this.bucketKey(l, bucket))) as Buffer[]
    const out: [bigint, bigint][] = []
    for (let i = 0; i + 1 < flat.length; i += 2) out.push([idAt(bucket, flat[i]!, l), BigInt(flat[i + 1]!.toString())])
    return out
  }

  /** Bucket keys of a generation, by SCAN (never KEYS). */
  async *scanBuckets(generation: number, count = 1000): AsyncGenerator<string[]> {
    let cursor = '0'
    const match = `${this.prefix}:${generation}:*`
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', count)
      cursor = next
      if (keys.length > 0) yield keys
    } while (cursor !== '0')
  }

  /** Deletes every bucket of a generation (UNLINK: freed in the background); returns keys removed. */
  async dropGeneration(generation: number): Promise<number> {
    let removed = 0
    for await (const keys of this.scanBuckets(generation)) removed += await this.redis.unlink(...keys)
    return removed
  }

  /**
   * The server's listpack limits (CONFIG GET), or null when CONFIG is not allowed. The layout relies
   * only on Redis's defaults (128 entries, 64 bytes); a server configured lower turns buckets into
   * hashtables, which `checkLimits` reports.
   */
  async listpackLimits(): Promise<ListpackLimits | null> {
    try {
      const reply = (await this.redis.config('GET', 'hash-max-listpack-*')) as string[]
      const m = new Map<string, string>()
      for (let i = 0; i + 1 < reply.length; i += 2) m.set(reply[i]!, reply[i + 1]!)
      const entries = Number(m.get('hash-max-listpack-entries') ?? m.get('hash-max-ziplist-entries'))
      const value = Number(m.get('hash-max-listpack-value') ?? m.get('hash-max-ziplist-value'))
      if (!Number.isFinite(entries) || !Number.isFinite(value)) {
        const old = (await this.redis.config('GET', 'hash-max-ziplist-*')) as string[]
        for (let i = 0; i + 1 < old.length; i += 2) m.set(old[i]!, old[i + 1]!)
        return {entries: Number(m.get('hash-max-ziplist-entries')), value: Number(m.get('hash-max-ziplist-value'))}
      }
      return {entries, value}
    } catch {
      return null
    }
  }

  /** Problems with the server's settings for this map, as sentences (empty when fine). */
  async checkLimits(): Promise<{limits: ListpackLimits | null; warnings: string[]}> {
    const limits = await this.listpackLimits()
    const warnings: string[] = []
    if (!limits) {
      warnings.push('CONFIG GET is not allowed on this Redis, so its listpack limits could not be checked.')
    } else {
      if (limits.entries < LISTPACK_MAX_ENTRIES) {
        warnings.push(
          `Redis has hash-max-listpack-entries ${limits.entries}; the photo map's buckets are sized for ${LISTPACK_MAX_ENTRIES} (the default) and will not stay compact. Set it back to ${LISTPACK_MAX_ENTRIES} or more.`,
        )
      }
      if (limits.value < LONGEST_ELEMENT) {
        warnings.push(
          `Redis has hash-max-listpack-value ${limits.value}; the photo map needs ${LONGEST_ELEMENT} (the default is 64).`,
        )
      }
    }
    return {limits, warnings}
  }

  /** Mappings in the active generation, estimated from the HLEN of `sample` random buckets (cheap). */
  async estimateMappings(sample = 256): Promise<number> {
    const layout = await this.layout()
    const pipe = this.redis.pipeline()
    const k = Math.min(sample, layout.buckets)
    for (let i = 0; i < k; i++) pipe.hlen(this.bucketKey(layout, Math.floor(Math.random() * layout.buckets)))
    const lens = (await execOrThrow(pipe)) as number[]
    return Math.round((lens.reduce((a, b) => a + b, 0) / k) * layout.buckets)
  }

  /** Fill and encoding of the active generation's buckets (all of them; SCAN + pipelined HLEN/OBJECT). */
  async stats(): Promise<PhotoMapStats> {
    const layout = await this.layout()
    const {limits, warnings} = await this.checkLimits()
    let bucketKeys = 0
    let mappings = 0
    let maxFill = 0
    let notListpack = 0
    for await (const keys of this.scanBuckets(layout.generation)) {
      const pipe = this.redis.pipeline()
      for (const k of keys) pipe.hlen(k).object('ENCODING', k)
      const replies = await execOrThrow(pipe)
      for (let i = 0; i < keys.length; i++) {
        const len = Number(replies[2 * i])
        bucketKeys++
        mappings += len
        maxFill = Math.max(maxFill, len)
        if (replies[2 * i + 1] !== 'listpack' && replies[2 * i + 1] !== 'ziplist') notListpack++
      }
    }
    if (mappings > layout.capacity) {
      warnings.push(
        `The photo map holds ${mappings} mappings, more than its capacity ${layout.capacity}; rebuild it larger with \`feedops shards reindex-photos --capacity ${Math.ceil((mappings * 2) / 1e6) * 1e6}\`.`,
      )
    }
    if (notListpack > 0) warnings.push(`${notListpack} bucket(s) are no longer listpack-encoded.`)
    return {
      layout,
      bucketKeys,
      mappings,
      meanFill: bucketKeys === 0 ? 0 : mappings / bucketKeys,
      maxFill,
      notListpack,
      limits,
      warnings,
    }
  }
}

function parseLayout(text: string | null, key: string): PhotoMapLayout {
  let parsed: unknown
  try {
    parsed = JSON.parse(text ?? '')
  } catch {
    parsed = null
  }
  if (!isLayout(parsed)) throw new Error(`Redis key ${key} does not hold a photo map layout: ${String(text).slice(0, 100)}`)
  return parsed
}

async function execOrThrow(pipe: ChainableCommander): Promise<unknown[]> {
  const results = (await pipe.exec()) ?? []
  return results.map(([err, value]) => {
    if (err) throw err
    return value
  })
}
