/**
 * Photo id → owner user id in Redis. The feed read learns each photo's owner here without touching
 * Postgres; the app calls set() on every photo write; `feedops shards reindex-photos` rebuilds it.
 *
 * Layout: one open-addressing hash table (Robin Hood linear probing) of fixed-width slots in a few
 * string keys of 32 MiB ("segments"), plus a hash ("stash") for what the table cannot hold. A slot
 * (photo-map-layout.ts) holds the permuted id's quotient q, the bits its home slot does not imply, so
 * it identifies its id exactly; the displacement d from home (0 = empty); and the owner in 32 bits.
 *
 * Memory at 10 M mappings: q is 41 bits (64 − log2 of 13.4 M slots), 6 bytes with d, + 4 bytes of owner
 * = 10 bytes a slot. Slots = capacity / 0.75 in whole segments: 4 × 3,355,410 slots × 10 bytes fit
 * 4 × 32 MiB, jemalloc's size class to the byte (a segment is created at full length in one SETRANGE),
 * so 13.4 bytes a mapping and no per-mapping key, field or pointer. Past capacity the table keeps
 * taking mappings, more and more displaced, until one would sit more than 30 slots from home; those go
 * to the stash (~80 bytes each) and stats() says to rebuild with a larger --capacity. Owners of 2^32 − 1
 * and up keep their slot and have the owner in the stash.
 *
 * Lookup of many ids: one EVALSHA. The client computes each id's segment, home and q (no Redis work)
 * and sends them packed, with each id's byte window as decimal text (Lua formats numbers with sprintf,
 * 0.3 µs each). The script does one GETRANGE of 8 slots from home per id (98.8 % of mappings sit within
 * 8 slots at load 0.745; the rest take a second GETRANGE), finds q with string.find and answers the
 * owners as one binary string. Measured on the 2-core bench box for 1000 ids: ~1.9 ms in Redis, of
 * which ~1.5 ms is the 1000 calls themselves (redis.call + GETRANGE + a cache miss); 0.24 ms of client
 * packing and ~0.3 ms to move 24 kB of arguments: ~2.4 ms in all, where the listpack hashes before took
 * ~3.4 ms (HGET 2.0 µs: a key lookup and a 34-entry scan, + 1.2 µs to call it from Lua). Why not less:
 * a slot needs ≥ 61 bits (41 of q, 20+ of owner), and BITFIELD_RO, the one command that reads many
 * places at once, hands Lua doubles (53 bits), so it needs two reads an id, ~1 µs each from Lua
 * (measured); MGET of plain keys costs 1.4 µs a key in Redis and 6.5× the memory.
 *
 * Writes are Lua scripts too: an insert shifts the following displaced slots one to the right, a delete
 * shifts them back, so every set, every chunk of a setMany and every delete is atomic.
 *
 * The layout (slots, segments, generation) is stored in Redis at `<prefix>:layout`, so every reader and
 * writer agrees on it without configuration; the first writer creates it from `capacity`. Instances
 * re-read it at most every `refreshMs`, which is how they follow a rebuild with a new capacity.
 */
import {createHash} from 'node:crypto'

import type {ChainableCommander, Redis} from 'ioredis'

import {
  ESCAPE_OWNER,
  idAt,
  isLayout,
  isLegacyLayout,
  layoutFor,
  locate,
  MAX_DISPLACEMENT,
  OWNER_BYTES,
  segmentBytes,
  SEGMENT_TAIL,
  DISPLACEMENT_BITS,
  type PhotoMapLayout,
} from './photo-map-layout.js'

export {layoutFor, MAX_CAPACITY, TARGET_LOAD, type PhotoMapLayout} from './photo-map-layout.js'

export interface PhotoOwnerMapOptions {
  /** Key prefix (default "pm"). */
  prefix?: string
  /** Capacity of the layout created when Redis has none yet (default 10,000,000). */
  capacity?: number
  /** How long a loaded layout is trusted before it is read again (default 1000 ms). */
  refreshMs?: number
  /** Slots a lookup reads per id in its first GETRANGE (default LOOKUP_WINDOW). */
  lookupWindow?: number
}

export interface PhotoMapStats {
  layout: PhotoMapLayout
  /** Segment keys of the active generation that exist. */
  segmentKeys: number
  /** Mappings in the table plus in the stash. */
  mappings: number
  inTable: number
  /** Entries of the stash hash: mappings with no room within MAX_DISPLACEMENT of home, and owners ≥ 2^32 − 1 of slots. */
  stashed: number
  /** Table mappings per slot. */
  load: number
  meanDisplacement: number
  maxDisplacement: number
  /** displacementHistogram[d] = mappings d slots past their home. */
  displacementHistogram: number[]
  warnings: string[]
}

export const DEFAULT_CAPACITY = 10_000_000
/**
 * Slots read per id by a lookup's first GETRANGE: at load 0.75, 99 % of mappings sit within 8 slots of
 * home (88 % within 4); a second GETRANGE (offsets formatted in Lua) costs more than the longer window.
 */
export const LOOKUP_WINDOW = 8
/** Ids per lookup script call. */
const LOOKUP_CHUNK = 2000
/** Slots an insert or delete reads at a time (a displacement is at most MAX_DISPLACEMENT). */
const WRITE_WINDOW = 2 * (MAX_DISPLACEMENT + 1)
/** Mappings per insert script call: ~1 ms of Redis time, so other clients are not held up for long. */
const INSERT_CHUNK = 256
/** Insert script calls per pipeline round trip. */
const PIPELINE_CHUNKS = 64
/** 2^(8 − DISPLACEMENT_BITS): byte 0 of a slot is (d + 1)·DU + the top bits of q. */
const DU = 2 ** (8 - DISPLACEMENT_BITS)
const ESCAPE_BYTES = Buffer.alloc(OWNER_BYTES, 0xff)

/** Parameters every script takes as ARGV[2]. */
function params(layout: PhotoMapLayout, window: number): string {
  return [layout.slotBytes, layout.dqBytes, DU, MAX_DISPLACEMENT, window, segmentBytes(layout)].join(' ')
}

const LUA_PRELUDE = `local prefix = ARGV[1]
local SB, DQ, DU, MAXD, W, SEGLEN = string.match(ARGV[2], '(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)')
SB, DQ, DU, MAXD, W, SEGLEN = tonumber(SB), tonumber(DQ), tonumber(DU), tonumber(MAXD), tonumber(W), tonumber(SEGLEN)
local sb, sub, floor, call, char, find = string.byte, string.sub, math.floor, redis.call, string.char, string.find
local ESC = '\\255\\255\\255\\255'
local stashKey, countKey = prefix .. 'stash', prefix .. 'count'
local keys = {}
local function segKey(seg)
  local k = keys[seg]
  if not k then k = prefix .. 't' .. seg; keys[seg] = k end
  return k
end
-- The stash's field for a mapping: segment u16, home in the segment u32, q (what the insert script gets).
local function stashField(seg2, home, q)
  return seg2 .. char(floor(home / 16777216) % 256, floor(home / 65536) % 256, floor(home / 256) % 256, home % 256) .. q
end
-- Scans the slots in v, the first being k0 slots past home, for (qt, qr). Returns the slot index in v
-- (0-based) when found, false when the mapping is not in the table, nil when v ended first.
local function scan(v, k0, qt, qr)
  local n = floor(#v / SB)
  for j = 0, n - 1 do
    local k, o = k0 + j, SB * j
    local b0 = sb(v, o + 1)
    local dd = floor(b0 / DU)
    if dd == 0 or dd - 1 < k then return false end
    if dd - 1 == k and b0 % DU == qt and sub(v, o + 2, o + DQ) == qr then return j end
  end
  if n == 0 or k0 + n > MAXD then return false end
  return nil
end
`

/**
 * ARGV: prefix, params, ids packed (segment u16, q in DQ bytes), each id's byte window "start" "end" as
 * decimal digits run together, and their digit counts (a byte an id: 16·start's + end's). Answers
 * {owners as 4 bytes each (FFFFFFFF: none), "i=owner,…" from the stash}.
 */
const GET_MANY_LUA = script(`${LUA_PRELUDE}
local packed, offs, lens = ARGV[3], ARGV[4], ARGV[5]
local PER = 2 + DQ
local out, want, fields = {}, {}, {}
local i, p, c = 0, 0, 1
for x = 1, #lens do
  -- sub() by known lengths: string.gmatch over "start end" pairs cost 0.4 µs an id
  local l = sb(lens, x)
  local l1, l2 = floor(l / 16), l % 16
  local s, e = sub(offs, c, c + l1 - 1), sub(offs, c + l1, c + l1 + l2 - 1)
  c = c + l1 + l2
  local g1, g2, qt = sb(packed, p + 1, p + 3)
  local key = segKey(g1 * 256 + g2)
  local v = call('GETRANGE', key, s, e)
  -- q's bytes after byte 0, searched for in the window (string.find is C; a loop over the slots in
  -- Lua cost more); a match counts at a slot's start with d = its distance from home and q's top bits
  local qr = sub(packed, p + 4, p + 2 + DQ)
  local owner, j, n = ESC, false, floor(#v / SB)
  local f = find(v, qr, 2, true)
  while f do
    local o = f - 2
    if o % SB == 0 then
      local b0 = sb(v, o + 1)
      if floor(b0 / DU) - 1 == o / SB and b0 % DU == qt then j = o / SB; break end
    end
    f = find(v, qr, f + 1, true)
  end
  if not j then
    -- not in the window: the probe goes on past it unless a slot in it ends the probe
    -- (empty, or closer to its own home than this one would be)
    local o = 0
    for k = 0, n - 1 do
      local dd = floor(sb(v, o + 1) / DU)
      if dd == 0 or dd - 1 < k then break end
      if k == n - 1 and k < MAXD then j = nil end
      o = o + SB
    end
  end
  if j == nil then
    -- the rest of the probe (1 % of ids at load 0.75 with 8 slots)
    local k0 = n
    while j == nil do
      local start = tonumber(s) + k0 * SB
      v = call('GETRANGE', key, start, start + W * SB - 1)
      j = scan(v, k0, qt, qr)
      k0 = k0 + W
    end
  end
  if j then owner = sub(v, SB * j + DQ + 1, SB * j + SB) end
  i = i + 1
  out[i] = owner
  if owner == ESC then
    want[#want + 1] = i
    fields[#fields + 1] = stashField(sub(packed, p + 1, p + 2), tonumber(s) / SB, sub(packed, p + 3, p + 2 + DQ))
  end
  p = p + PER
end
local extra = {}
if #want > 0 and call('EXISTS', stashKey) == 1 then
  for first = 1, #fields, 1000 do -- unpack() takes at most ~8000 values
    local last = math.min(#fields, first + 999)
    local got = call('HMGET', stashKey, unpack(fields, first, last))
    for n = first, last do
      local o = got[n - first + 1]
      if o then extra[#extra + 1] = want[n] .. '=' .. o end
    end
  end
end
return {table.concat(out), table.concat(extra, ',')}`)

/**
 * ARGV: prefix, params, pairs packed (segment u16, home u32, q in DQ bytes, owner u32 or FFFFFFFF), and
 * the owners that do not fit 32 bits as "n,n,…" in order. Each pair is an upsert. Answers the number of
 * pairs that went to the stash for lack of room.
 */
const SET_MANY_LUA = script(`${LUA_PRELUDE}
local packed, wide = ARGV[3], ARGV[4]
local PER = 10 + DQ
local nextWide = string.gmatch(wide, '[^,]+')
local stashed = call('EXISTS', stashKey) == 1
local ready, added, overflowed = {}, 0, 0
for i = 0, #packed / PER - 1 do
  local p = PER * i
  local g1, g2, h1, h2, h3, h4, qt = sb(packed, p + 1, p + 7)
  local seg, home = g1 * 256 + g2, ((h1 * 256 + h2) * 256 + h3) * 256 + h4
  local qr = sub(packed, p + 8, p + 6 + DQ)
  local owner = sub(packed, p + 7 + DQ, p + 10 + DQ)
  local id = sub(packed, p + 1, p + 6 + DQ) -- the stash's field
  local wideOwner = nil
  if owner == ESC then wideOwner = nextWide() end
  local key = segKey(seg)
  if not ready[seg] then
    -- created at full length in one allocation (growing a string later over-allocates)
    if call('EXISTS', key) == 0 then call('SETRANGE', key, SEGLEN - 1, '\\0') end
    ready[seg] = true
  end
  local start = home * SB
  local v, pos, empty, done, placed, slots = nil, nil, nil, false, false, W
  -- a long run can end past the first window: read a longer one (rare below capacity)
  while not done and not empty and slots <= 16 * W do
    v = call('GETRANGE', key, start, start + slots * SB - 1)
    local n = floor(#v / SB)
    local stop = false
    pos = nil
    for k = 0, n - 1 do
      local o = SB * k
      local b0 = sb(v, o + 1)
      local dd = floor(b0 / DU)
      if dd == 0 then
        pos = pos or k
        empty = k
        break
      end
      if pos == nil then
        if dd - 1 == k and b0 % DU == qt and sub(v, o + 2, o + DQ) == qr then
          call('SETRANGE', key, start + o + DQ, owner)
          done = true
          break
        end
        -- Robin Hood: the new mapping takes the place of the first one closer to its own home
        if dd - 1 < k then pos = k end
      end
      if pos ~= nil then
        if dd - 1 >= MAXD then stop = true; break end -- this one cannot move one slot further
      elseif k >= MAXD then
        stop = true
        break
      end
    end
    if stop or n < slots then break end -- no room, or the end of the segment
    slots = slots * 4
  end
  if not done and empty then
    local parts = {char((pos + 1) * DU + qt), qr, owner}
    for k = pos, empty - 1 do
      local o = SB * k
      parts[#parts + 1] = char(sb(v, o + 1) + DU)
      parts[#parts + 1] = sub(v, o + 2, o + SB)
    end
    call('SETRANGE', key, start + pos * SB, table.concat(parts))
    added = added + 1
    done = true
    placed = true
  end
  -- The counter counts mappings: a table slot, or a stash entry with no slot (an owner ≥ 2^32 − 1 has both).
  if not done then
    -- no room within MAXD slots of home: the stash holds it, in decimal like any Redis hash value
    local a, b, c, d = sb(owner, 1, 4)
    added = added + call('HSET', stashKey, id, wideOwner or tostring(((a * 256 + b) * 256 + c) * 256 + d))
    stashed = true
    overflowed = overflowed + 1
  elseif wideOwner then
    call('HSET', stashKey, id, wideOwner)
    stashed = true
  elseif stashed then
    local was = call('HDEL', stashKey, id)
    if placed then added = added - was end -- it had overflowed earlier and has a slot now
  end
end
if added ~= 0 then call('INCRBY', countKey, added) end
return overflowed`)

/** ARGV: prefix, params, one id packed like a pair without owner (segment, home, q). Answers 1 if it was mapped. */
const DELETE_LUA = script(`${LUA_PRELUDE}
local packed = ARGV[3]
local g1, g2, h1, h2, h3, h4, qt = sb(packed, 1, 7)
local key = segKey(g1 * 256 + g2)
local start = (((h1 * 256 + h2) * 256 + h3) * 256 + h4) * SB
local qr = sub(packed, 8, 6 + DQ)
local id = packed -- the stash's field
local v = call('GETRANGE', key, start, start + W * SB - 1)
local j = scan(v, 0, qt, qr)
local removed = 0
if j then
  -- backward shift: the following displaced mappings move one slot closer to home
  local at = start + j * SB
  local parts = {}
  local from = at + SB
  local more = true
  while more do
    local w = call('GETRANGE', key, from, from + W * SB - 1)
    local n = floor(#w / SB)
    more = n > 0
    for k = 0, n - 1 do
      local b0 = sb(w, SB * k + 1)
      if b0 < 2 * DU then more = false; break end -- empty, or at its home
      parts[#parts + 1] = char(b0 - DU)
      parts[#parts + 1] = sub(w, SB * k + 2, SB * k + SB)
    end
    from = from + n * SB
  end
  parts[#parts + 1] = string.rep('\\0', SB)
  call('SETRANGE', key, at, table.concat(parts))
  removed = 1
end
-- an owner ≥ 2^32 − 1 of a slot just removed, or a mapping that had overflowed into the stash
if call('HDEL', stashKey, id) == 1 then removed = 1 end
if removed == 1 then call('DECRBY', countKey, 1) end
return removed`)

function script(lua: string): {lua: string; sha: string} {
  return {lua, sha: createHash('sha1').update(lua).digest('hex')}
}

export class PhotoOwnerMap {
  readonly prefix: string
  private readonly capacity: number
  private readonly refreshMs: number
  private readonly lookupWindow: number
  private cached: {layout: PhotoMapLayout; at: number} | null = null
  private loading: Promise<PhotoMapLayout> | null = null

  constructor(
    private readonly redis: Redis,
    opts: PhotoOwnerMapOptions = {},
  ) {
    this.prefix = opts.prefix ?? 'pm'
    this.capacity = opts.capacity ?? DEFAULT_CAPACITY
    this.refreshMs = opts.refreshMs ?? 1000
    this.lookupWindow = opts.lookupWindow ?? LOOKUP_WINDOW
    if (!Number.isInteger(this.lookupWindow) || this.lookupWindow < 1 || this.lookupWindow > SEGMENT_TAIL) {
      throw new RangeError(`Lookup window ${this.lookupWindow} is outside 1..${SEGMENT_TAIL}.`)
    }
    layoutFor(this.capacity) // rejects a bad capacity now, not at the first write
  }

  get layoutKey(): string {
    return `${this.prefix}:layout`
  }

  /** Prefix of every key of a generation. */
  generationPrefix(generation: number): string {
    return `${this.prefix}:${generation}:`
  }

  segmentKey(layout: PhotoMapLayout, segment: number): string {
    return `${this.generationPrefix(layout.generation)}t${segment}`
  }

  stashKey(layout: PhotoMapLayout): string {
    return `${this.generationPrefix(layout.generation)}stash`
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

  /** The layout in Redis, or null when there is none (nothing written yet, after FLUSHDB, or an old format). */
  async storedLayout(): Promise<PhotoMapLayout | null> {
    const text = await this.redis.get(this.layoutKey)
    if (text === null || legacyGenerationOf(text) !== null) return null
    return parseLayout(text, this.layoutKey)
  }

  /** Generation of a layout written by the hash-bucket map (format 1), which only a rebuild replaces. */
  async legacyGeneration(): Promise<number | null> {
    const text = await this.redis.get(this.layoutKey)
    return text === null ? null : legacyGenerationOf(text)
  }

  /** Makes `layout` the active one (a rebuild calls this once the new generation is filled). */
  async activate(layout: PhotoMapLayout): Promise<void> {
    await this.redis.set(this.layoutKey, JSON.stringify(layout))
    this.cached = {layout, at: Date.now()}
  }

  async set(photoId: bigint, userId: bigint): Promise<void> {
    await this.setMany([[photoId, userId]])
  }

  /**
   * Writes many mappings (upserts): script calls of INSERT_CHUNK pairs, each atomic, pipelined. Every
   * pair is checked before anything is written.
   */
  async setMany(pairs: readonly (readonly [bigint, bigint])[], layout?: PhotoMapLayout): Promise<void> {
    if (pairs.length === 0) return
    const l = layout ?? (await this.layout())
    const calls = this.insertCalls(pairs, l)
    for (let c = 0; c < calls.length; c += PIPELINE_CHUNKS) {
      const batch = calls.slice(c, c + PIPELINE_CHUNKS)
      try {
        await execOrThrow(this.queueCalls(this.redis.pipeline(), batch, 'sha'))
      } catch (err) {
        if (!isNoScript(err)) throw err
        // The script cache was flushed: EVAL loads it again (inserts are upserts, so repeating is safe).
        await execOrThrow(this.queueCalls(this.redis.pipeline(), batch, 'text'))
      }
    }
  }

  /** Adds the insert script calls for `pairs` to a pipeline the caller executes (sends the script text). */
  queueSet(pipe: ChainableCommander, pairs: readonly (readonly [bigint, bigint])[], layout: PhotoMapLayout): void {
    this.queueCalls(pipe, this.insertCalls(pairs, layout), 'text')
  }

  private queueCalls(pipe: ChainableCommander, calls: (string | Buffer)[][], how: 'sha' | 'text'): ChainableCommander {
    for (const args of calls) {
      if (how === 'sha') pipe.evalsha(SET_MANY_LUA.sha, 0, ...args)
      else pipe.eval(SET_MANY_LUA.lua, 0, ...args)
    }
    return pipe
  }

  /** Script arguments for `pairs`, INSERT_CHUNK pairs a call; throws (before any write) on a bad pair. */
  private insertCalls(pairs: readonly (readonly [bigint, bigint])[], layout: PhotoMapLayout): (string | Buffer)[][] {
    const per = 10 + layout.dqBytes
    const packed = Buffer.allocUnsafe(pairs.length * per)
    const wide: string[][] = []
    for (let i = 0; i < pairs.length; i++) {
      const [photoId, userId] = pairs[i]!
      if (typeof userId !== 'bigint' || userId < 0n) throw new RangeError(`User id ${String(userId)} is not a non-negative integer.`)
      const p = i * per
      this.packId(photoId, layout, packed, p, true)
      const chunk = Math.floor(i / INSERT_CHUNK)
      if (userId >= BigInt(ESCAPE_OWNER)) {
        ESCAPE_BYTES.copy(packed, p + 6 + layout.dqBytes)
        ;(wide[chunk] ??= []).push(userId.toString())
      } else {
        packed.writeUInt32BE(Number(userId), p + 6 + layout.dqBytes)
      }
    }
    const prefix = this.generationPrefix(layout.generation)
    const args = params(layout, WRITE_WINDOW)
    const calls: (string | Buffer)[][] = []
    for (let c = 0; c * INSERT_CHUNK < pairs.length; c++) {
      const chunk = packed.subarray(c * INSERT_CHUNK * per, Math.min(pairs.length, (c + 1) * INSERT_CHUNK) * per)
      calls.push([prefix, args, chunk, (wide[c] ?? []).join(',')])
    }
    return calls
  }

  /**
   * Writes segment u16, home in the segment u32 (when withHome) and q (dqBytes) at `p`; returns the
   * home slot in the whole table. With the home, these bytes are also the id's field in the stash.
   */
  private packId(id: bigint, layout: PhotoMapLayout, into: Buffer, p: number, withHome: boolean): number {
    const qAt = p + (withHome ? 6 : 2)
    const home = locate(id, layout, into, qAt)
    const segment = Math.floor(home / layout.segmentSlots)
    into.writeUInt16BE(segment, p)
    if (withHome) into.writeUInt32BE(home - segment * layout.segmentSlots, p + 2)
    return home
  }

  async get(photoId: bigint): Promise<bigint | null> {
    return (await this.getMany([photoId]))[0] ?? null
  }

  /**
   * Owners of many photos in one script call (see the top of this file); null where unknown. Throws a
   * RangeError, before any Redis call, for an id that is not an unsigned 64-bit integer.
   */
  async getMany(photoIds: readonly bigint[]): Promise<(bigint | null)[]> {
    if (photoIds.length === 0) return []
    const layout = await this.layout()
    if (photoIds.length <= LOOKUP_CHUNK) return this.lookup(photoIds, layout)
    // Several script calls, sent back to back: one call for 100 k ids would hold Redis for ~0.2 s.
    const parts: Promise<(bigint | null)[]>[] = []
    for (let i = 0; i < photoIds.length; i += LOOKUP_CHUNK) parts.push(this.lookup(photoIds.slice(i, i + LOOKUP_CHUNK), layout))
    return (await Promise.all(parts)).flat()
  }

  private async lookup(photoIds: readonly bigint[], layout: PhotoMapLayout): Promise<(bigint | null)[]> {
    const n = photoIds.length
    const per = 2 + layout.dqBytes
    const packed = Buffer.allocUnsafe(n * per)
    // each window's start and end offsets in decimal, run together, and their digit counts
    const digits = Buffer.allocUnsafe(n * 20)
    const lens = Buffer.allocUnsafe(n)
    let w = 0
    const sb = layout.slotBytes
    const span = this.lookupWindow * sb - 1
    for (let i = 0; i < n; i++) {
      const p = i * per
      const home = this.packId(photoIds[i]!, layout, packed, p, false)
      const start = (home % layout.segmentSlots) * sb
      const mid = writeDecimal(digits, w, start)
      const end = writeDecimal(digits, mid, start + span)
      lens[i] = (mid - w) * 16 + (end - mid)
      w = end
    }
    const [owners, extra] = (await this.evalScript(GET_MANY_LUA, [
      this.generationPrefix(layout.generation),
      params(layout, this.lookupWindow),
      packed,
      digits.subarray(0, w),
      lens,
    ])) as [Buffer, Buffer]
    const out: (bigint | null)[] = new Array<bigint | null>(n)
    for (let i = 0; i < n; i++) {
      const v = owners.readUInt32BE(i * OWNER_BYTES)
      out[i] = v === ESCAPE_OWNER ? null : BigInt(v)
    }
    if (extra.length > 0) {
      for (const pair of extra.toString().split(',')) {
        const eq = pair.indexOf('=')
        out[Number(pair.slice(0, eq)) - 1] = BigInt(pair.slice(eq + 1))
      }
    }
    return out
  }

  private async evalScript(s: {lua: string; sha: string}, args: (string | Buffer)[]): Promise<unknown> {
    try {
      return await this.redis.callBuffer('EVALSHA', s.sha, 0, ...args)
    } catch (err) {
      if (!isNoScript(err)) throw err
      return this.redis.callBuffer('EVAL', s.lua, 0, ...args)
    }
  }

  /** Removes a mapping; true when there was one. */
  async delete(photoId: bigint): Promise<boolean> {
    const layout = await this.layout()
    const packed = Buffer.allocUnsafe(6 + layout.dqBytes)
    this.packId(photoId, layout, packed, 0, true)
    const removed = (await this.evalScript(DELETE_LUA, [this.generationPrefix(layout.generation), params(layout, WRITE_WINDOW), packed])) as number
    return removed === 1
  }

  /** Every (photo id, user id) of a generation: the table's slots decoded back to ids, then the stash. */
  async *entries(layout?: PhotoMapLayout, chunkSlots = 100_000): AsyncGenerator<[bigint, bigint]> {
    const l = layout ?? (await this.layout())
    for (let s = 0; s < l.segments; s++) {
      for await (const [slot, bytes] of this.segmentSlots(l, s, chunkSlots)) {
        const d = (bytes[0]! >>> (8 - DISPLACEMENT_BITS)) - 1
        const home = s * l.segmentSlots + slot - d
        yield [idAt(home, bytes.subarray(0, l.dqBytes), l), BigInt(bytes.readUInt32BE(l.dqBytes))]
      }
    }
    for await (const [id, owner] of this.stashEntries(l)) yield [id, owner]
  }

  /** Occupied slots of one segment as [slot in the segment, slot bytes] (GETRANGE in chunks). */
  private async *segmentSlots(layout: PhotoMapLayout, segment: number, chunkSlots: number): AsyncGenerator<[number, Buffer]> {
    const key = this.segmentKey(layout, segment)
    const total = layout.segmentSlots + SEGMENT_TAIL
    const sb = layout.slotBytes
    for (let first = 0; first < total; first += chunkSlots) {
      const n = Math.min(chunkSlots, total - first)
      const buf = await this.redis.getrangeBuffer(key, first * sb, (first + n) * sb - 1)
      for (let j = 0; j + sb <= buf.length; j++) {
        const o = j * sb
        if (buf[o]! >>> (8 - DISPLACEMENT_BITS) !== 0) yield [first + j, buf.subarray(o, o + sb)]
      }
      if (buf.length < n * sb) return // the segment does not exist (or is short): nothing further
    }
  }

  /** The stash's (photo id, user id) pairs; its fields are segment u16, home in the segment u32 and q. */
  async *stashEntries(layout?: PhotoMapLayout): AsyncGenerator<[bigint, bigint]> {
    const l = layout ?? (await this.layout())
    let cursor = '0'
    do {
      const [next, flat] = (await this.redis.hscanBuffer(this.stashKey(l), cursor, 'COUNT', 1000)) as [Buffer, Buffer[]]
      cursor = next.toString()
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const f = flat[i]!
        const home = f.readUInt16BE(0) * l.segmentSlots + f.readUInt32BE(2)
        yield [idAt(home, f.subarray(6), l), BigInt(flat[i + 1]!.toString())]
      }
    } while (cursor !== '0')
  }

  /** Keys of a generation, by SCAN (never KEYS). */
  async *scanKeys(generation: number, count = 1000): AsyncGenerator<string[]> {
    let cursor = '0'
    const match = `${this.generationPrefix(generation)}*`
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', count)
      cursor = next
      if (keys.length > 0) yield keys
    } while (cursor !== '0')
  }

  /** Deletes every key of a generation (UNLINK: freed in the background); returns keys removed. */
  async dropGeneration(generation: number): Promise<number> {
    let removed = 0
    for await (const keys of this.scanKeys(generation)) removed += await this.redis.unlink(...keys)
    return removed
  }

  /**
   * Problems with the server's settings for this map, as sentences (empty when fine). The table needs
   * nothing beyond stock settings; an allkeys-* eviction policy, though, would drop a whole segment (a
   * quarter of the map at 10 M) at once.
   */
  async checkLimits(): Promise<{warnings: string[]}> {
    const warnings: string[] = []
    try {
      const reply = (await this.redis.config('GET', 'maxmemory-policy')) as string[]
      const policy = reply[1] ?? ''
      if (policy.startsWith('allkeys-')) {
        warnings.push(
          `Redis evicts with maxmemory-policy ${policy}; under memory pressure it would drop a whole segment of the photo map (millions of mappings) at once. Use noeviction or a volatile-* policy.`,
        )
      }
    } catch {
      warnings.push('CONFIG GET is not allowed on this Redis, so its eviction policy could not be checked.')
    }
    return {warnings}
  }

  /** Mappings in the active generation, from a counter the scripts keep (cheap; stats() counts the slots). */
  async count(layout?: PhotoMapLayout): Promise<number> {
    const l = layout ?? (await this.layout())
    return Number((await this.redis.get(`${this.generationPrefix(l.generation)}count`)) ?? 0)
  }

  /** Load and displacements of the active generation, from every slot (reads the whole table in chunks). */
  async stats(): Promise<PhotoMapStats> {
    const layout = await this.layout()
    const {warnings} = await this.checkLimits()
    const histogram = new Array<number>(MAX_DISPLACEMENT + 1).fill(0)
    let inTable = 0
    let escaped = 0
    let sum = 0
    let segmentKeys = 0
    for (let s = 0; s < layout.segments; s++) {
      if ((await this.redis.exists(this.segmentKey(layout, s))) === 1) segmentKeys++
      for await (const [, bytes] of this.segmentSlots(layout, s, 100_000)) {
        const d = (bytes[0]! >>> (8 - DISPLACEMENT_BITS)) - 1
        histogram[d]!++
        inTable++
        sum += d
        if (bytes.readUInt32BE(layout.dqBytes) === ESCAPE_OWNER) escaped++
      }
    }
    const stashed = await this.redis.hlen(this.stashKey(layout))
    const mappings = inTable + stashed - escaped
    let maxDisplacement = 0
    histogram.forEach((c, d) => {
      if (c > 0) maxDisplacement = d
    })
    if (mappings > layout.capacity) {
      warnings.push(
        `The photo map holds ${mappings} mappings, more than its capacity ${layout.capacity}; rebuild it larger with \`feedops shards reindex-photos --capacity ${Math.ceil((mappings * 2) / 1e6) * 1e6}\`.`,
      )
    }
    if (stashed > Math.max(100, mappings / 1000)) {
      warnings.push(`${stashed} mappings did not fit the table and sit in the stash hash (about 80 bytes each instead of 13).`)
    }
    return {
      layout,
      segmentKeys,
      mappings,
      inTable,
      stashed,
      load: inTable / layout.buckets,
      meanDisplacement: inTable === 0 ? 0 : sum / inTable,
      maxDisplacement,
      displacementHistogram: histogram,
      warnings,
    }
  }
}

const DIGIT_PAIRS = Buffer.from(Array.from({length: 100}, (_, i) => String(i).padStart(2, '0')).join(''), 'latin1')

/**
 * Writes n (a non-negative integer below 2^31: a byte offset in a segment) in decimal at `pos`; returns
 * the position after it. Two digits a step: this runs twice per id of every lookup.
 */
function writeDecimal(buf: Buffer, pos: number, n: number): number {
  const digits = n < 10 ? 1 : n < 100 ? 2 : n < 1e3 ? 3 : n < 1e4 ? 4 : n < 1e5 ? 5 : n < 1e6 ? 6 : n < 1e7 ? 7 : n < 1e8 ? 8 : n < 1e9 ? 9 : 10
  let i = pos + digits
  while (n >= 100) {
    const r = n % 100
    n = (n / 100) | 0
    buf[--i] = DIGIT_PAIRS[2 * r + 1]!
    buf[--i] = DIGIT_PAIRS[2 * r]!
  }
  if (n >= 10) {
    buf[--i] = DIGIT_PAIRS[2 * n + 1]!
    buf[--i] = DIGIT_PAIRS[2 * n]!
  } else {
    buf[--i] = 0x30 + n
  }
  return pos + digits
}

function legacyGenerationOf(text: string): number | null {
  try {
    const parsed: unknown = JSON.parse(text)
    return isLegacyLayout(parsed) ? parsed.generation : null
  } catch {
    return null
  }
}

function parseLayout(text: string | null, key: string): PhotoMapLayout {
  let parsed: unknown
  try {
    parsed = JSON.parse(text ?? '')
  } catch {
    parsed = null
  }
  if (isLegacyLayout(parsed)) {
    throw new Error(`Redis key ${key} holds a layout of the old hash-bucket photo map; rebuild the map with \`feedops shards reindex-photos\`.`)
  }
  if (!isLayout(parsed)) throw new Error(`Redis key ${key} does not hold a photo map layout: ${String(text).slice(0, 100)}`)
  return parsed
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT')
}

async function execOrThrow(pipe: ChainableCommander): Promise<unknown[]> {
  const results = (await pipe.exec()) ?? []
  return results.map(([err, value]) => {
    if (err) throw err
    return value
  })
}
