import type {ChainableCommander, Redis} from 'ioredis'

import {checkU64, entryAt, LISTPACK_MAX_ENTRIES, LONGEST_ELEMENT, permuteMany, spareBitsAt, stateOf, type MapState} from './layout.js'
import {DELETE, GET_MANY, SET_MANY, type Script} from './scripts.js'

export {SPLIT_FILL, type MapState} from './layout.js'

/**
 * Photo id → owner user id, in Redis hashes small enough to stay listpack-encoded, whose number grows
 * with the mappings by linear hashing (layout.ts explains the scheme, scripts.ts runs it). The feed read
 * learns each photo's owner here without touching Postgres; the app calls set() on every photo write;
 * `feedops shards reindex-photos` rebuilds it from Postgres into a new generation of keys and then makes
 * that one active (`<prefix>:gen`). Every call is one script: it reads the active generation and its
 * state itself, so instances need no configuration and no refresh to follow a split or a rebuild.
 */
export interface PhotoOwnerMapOptions {
  /** Key prefix (default "pm"). */
  prefix?: string
}

export interface PhotoMapStats {
  state: MapState
  /** Bucket keys of the generation (SCAN), overflow hashes not counted. */
  bucketKeys: number
  /** Overflow hashes (of full buckets, or of ids whose short field another id holds: layout.ts). */
  overflowKeys: number
  /** Mappings found in the keys (the state's count should agree). */
  mappings: number
  meanFill: number
  maxFill: number
  /** Keys Redis no longer keeps as listpack (each costs ~5× more). */
  notListpack: number
  limits: ListpackLimits | null
  warnings: string[]
}

export interface ListpackLimits {
  entries: number
  value: number
}

/** The decimal digits text[from, to) (fewer than 16: exact as a number). */
function decimalAt(text: string, from: number, to: number): number {
  let v = 0
  for (let j = from; j < to; j++) {
    const digit = text.charCodeAt(j) - 48
    if (digit < 0 || digit > 9) throw new Error(`The photo map holds a value that is not a number: ${text.slice(from, to)}`)
    v = v * 10 + digit
  }
  return v
}

/** Pairs per script call: a call blocks Redis, so big batches go as several calls in one pipeline. */
const PAIRS_PER_CALL = 1000

export class PhotoOwnerMap {
  readonly prefix: string

  constructor(
    private readonly redis: Redis,
    opts: PhotoOwnerMapOptions = {},
  ) {
    this.prefix = opts.prefix ?? 'pm'
  }

  get generationKey(): string {
    return `${this.prefix}:gen`
  }

  bucketKey(generation: number, bucket: number): string {
    return `${this.prefix}:${generation}:${bucket}`
  }

  /** The active generation, or null when there is none (nothing written yet, or after FLUSHDB). */
  async activeGeneration(): Promise<number | null> {
    const text = await this.redis.get(this.generationKey)
    if (text === null) return null
    const g = Number(text)
    if (!Number.isSafeInteger(g) || g < 1) throw new Error(`Redis key ${this.generationKey} does not hold a generation number: ${text.slice(0, 100)}`)
    return g
  }

  /** The state of a generation (default: the active one; an empty state when it has none yet). */
  async state(generation?: number): Promise<MapState> {
    const g = generation ?? (await this.activeGeneration()) ?? 1
    const [l, s, n] = await this.redis.hmget(`${this.prefix}:${g}:state`, 'l', 's', 'n')
    return stateOf(g, Number(l ?? 0), Number(s ?? 0), Number(n ?? 0))
  }

  /** Makes a generation the active one (a rebuild calls this once the new generation is filled). */
  async activate(generation: number): Promise<void> {
    await this.redis.set(this.generationKey, String(generation))
  }

  async set(photoId: bigint, userId: bigint): Promise<void> {
    await this.setMany([[photoId, userId]])
  }

  /**
   * Writes many mappings (into `generation`, default the active one); answers how many were new. Every
   * pair is checked before anything is sent, so a bad one writes nothing.
   */
  async setMany(pairs: readonly (readonly [bigint, bigint])[], generation?: number): Promise<number> {
    if (pairs.length === 0) return 0
    const users = new Array<string>(pairs.length)
    for (let i = 0; i < pairs.length; i++) {
      const userId = pairs[i]![1]
      checkU64(userId, 'User id')
      users[i] = userId.toString()
    }
    const xs = permuteMany(pairs.map((p) => p[0]))
    const gen = generation === undefined ? '' : String(generation)
    const calls: Promise<unknown>[] = []
    for (let i = 0; i < pairs.length; i += PAIRS_PER_CALL) {
      const to = Math.min(pairs.length, i + PAIRS_PER_CALL)
      calls.push(this.evalScript(SET_MANY, [this.prefix, gen, xs.subarray(i * 8, to * 8), ...users.slice(i, to)]))
    }
    const added = await Promise.all(calls)
    return added.reduce<number>((a, n) => a + Number(n), 0)
  }

  async get(photoId: bigint): Promise<bigint | null> {
    return (await this.getMany([photoId]))[0] ?? null
  }

  /**
   * Owners of many photos in one call; null where unknown. The lookups run in one server-side script
   * (one round trip, one command): a feed's ids fall in as many buckets as there are ids, and a pipeline
   * of one HGET per bucket spent most of its time building and parsing commands in the client. The
   * script gets the permuted ids as one packed binary string and answers one string.
   */
  async getMany(photoIds: readonly bigint[]): Promise<(bigint | null)[]> {
    if (photoIds.length === 0) return []
    const n = photoIds.length
    const xs = permuteMany(photoIds)
    const [joined, level, split] = (await this.evalScript(GET_MANY, [this.prefix, xs])) as [string, number, number]
    // each value is the user id × 2^m + m bits of the id, m by the level of the id's bucket (layout.ts);
    // read in place, without a string per value: about 0.3 ms of a 5 ms lookup of 1000 ids (measured)
    const buckets = 2 ** level
    const d0 = 2 ** spareBitsAt(level)
    const d1 = 2 ** spareBitsAt(level + 1)
    const out: (bigint | null)[] = new Array<bigint | null>(n)
    let from = 0
    for (let i = 0; i < n; i++) {
      let to = joined.indexOf(',', from)
      if (to < 0) to = joined.length
      if (to === from) out[i] = null
      else {
        const d = xs.readUInt32BE(i * 8 + 4) % buckets < split ? d1 : d0
        out[i] = to - from < 16 ? BigInt(Math.floor(decimalAt(joined, from, to) / d)) : BigInt(joined.slice(from, to)) / BigInt(d)
      }
      from = to + 1
    }
    if (from !== joined.length + 1) throw new Error(`The photo map's lookup answered values for other than ${n} ids.`)
    return out
  }

  /** Removes a mapping; true when there was one. Buckets are never merged again. */
  async delete(photoId: bigint): Promise<boolean> {
    return Number(await this.evalScript(DELETE, [this.prefix, permuteMany([photoId])])) === 1
  }

  private async evalScript(script: Script, args: (string | Buffer)[]): Promise<unknown> {
    try {
      return await this.redis.evalsha(script.sha, 0, ...args)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return this.redis.eval(script.lua, 0, ...args)
    }
  }

  /** Every (photo id, user id) in one bucket and its overflow, the ids decoded back from the fields. */
  async bucketEntries(bucket: number, generation?: number): Promise<[bigint, bigint][]> {
    const state = await this.state(generation)
    const key = this.bucketKey(state.generation, bucket)
    const out: [bigint, bigint][] = []
    for (const k of [key, `${key}+`]) {
      const flat = (await this.redis.callBuffer('HGETALL', k)) as Buffer[]
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const {id, owner} = entryAt(bucket, flat[i]!, flat[i + 1]!, state)
        out.push([id, owner])
      }
    }
    return out
  }

  /** Keys of a generation (buckets, overflows and its state), by SCAN (never KEYS). */
  async *scanBuckets(generation: number, count = 1000): AsyncGenerator<string[]> {
    let cursor = '0'
    const match = `${this.prefix}:${generation}:*`
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', count)
      cursor = next
      if (keys.length > 0) yield keys
    } while (cursor !== '0')
  }

  /** Deletes every key of a generation (UNLINK: freed in the background); returns keys removed. */
  async dropGeneration(generation: number): Promise<number> {
    let removed = 0
    for await (const keys of this.scanBuckets(generation)) removed += await this.redis.unlink(...keys)
    return removed
  }

  /**
   * The server's listpack limits (CONFIG GET), or null when CONFIG is not allowed. The buckets rely
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
          `Redis has hash-max-listpack-entries ${limits.entries}; the photo map's buckets hold up to ${LISTPACK_MAX_ENTRIES} (the default) and will not stay compact. Set it back to ${LISTPACK_MAX_ENTRIES} or more.`,
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

  /** Fill and encoding of a generation's keys (default the active one; all of them, SCAN + pipelined HLEN/OBJECT). */
  async stats(generation?: number): Promise<PhotoMapStats> {
    const state = await this.state(generation)
    const {limits, warnings} = await this.checkLimits()
    const stateKey = `${this.prefix}:${state.generation}:state`
    let bucketKeys = 0
    let overflowKeys = 0
    let mappings = 0
    let maxFill = 0
    let notListpack = 0
    for await (const keys of this.scanBuckets(state.generation)) {
      const hashes = keys.filter((k) => k !== stateKey)
      const pipe = this.redis.pipeline()
      for (const k of hashes) pipe.hlen(k).object('ENCODING', k)
      const replies = await execOrThrow(pipe)
      for (let i = 0; i < hashes.length; i++) {
        const len = Number(replies[2 * i])
        if (hashes[i]!.endsWith('+')) overflowKeys++
        else bucketKeys++
        mappings += len
        maxFill = Math.max(maxFill, len)
        if (replies[2 * i + 1] !== 'listpack' && replies[2 * i + 1] !== 'ziplist') notListpack++
      }
    }
    if (notListpack > 0) warnings.push(`${notListpack} bucket(s) are no longer listpack-encoded.`)
    if (mappings !== state.mappings) {
      warnings.push(`The photo map's state counts ${state.mappings} mappings but its buckets hold ${mappings}; \`feedops shards reindex-photos\` rebuilds it.`)
    }
    return {state, bucketKeys, overflowKeys, mappings, meanFill: bucketKeys === 0 ? 0 : mappings / bucketKeys, maxFill, notListpack, limits, warnings}
  }
}

async function execOrThrow(pipe: ChainableCommander): Promise<unknown[]> {
  const results = (await pipe.exec()) ?? []
  return results.map(([err, value]) => {
    if (err) throw err
    return value
  })
}
