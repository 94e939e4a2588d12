/**
 * Where a photo id lives in the Redis photo→owner map: which string key ("segment"), which slot, and
 * the bytes stored there. The design rationale (why a table in strings, memory and lookup cost) is at
 * the top of photo-map.ts; this file is the pure arithmetic both the client and the tests use.
 *
 *   x    = permute(id)        a bijection of the 64-bit space (4 Feistel rounds of murmur3 fmix32), so x
 *                             is spread evenly whatever the pattern of the ids (time, shard, sequence)
 *   home = x mod B            B table slots ("buckets" of one mapping each), B ≈ capacity / TARGET_LOAD
 *   q    = x div B            exactly the bits of x the home does not imply (41 bits at B ≈ 13 M)
 * A slot is `slotBytes` bytes: the first `dqBytes` hold (d + 1) in the top DISPLACEMENT_BITS bits and q
 * below it, big-endian (d = slot − home, the Robin Hood displacement; 0 marks an empty slot); the last
 * OWNER_BYTES hold the owner, big-endian. Slot `home` is byte `home·slotBytes` of segment
 * `home div segmentSlots`. The id comes back as permute⁻¹(q·B + home), so a slot identifies its id exactly.
 */

/** Mappings per slot at capacity. Robin Hood probing keeps 88 % of lookups within 4 slots of home at 0.75. */
export const TARGET_LOAD = 0.75
/** Bits of the displacement field; d + 1 ≤ 31, so a mapping sits at most MAX_DISPLACEMENT slots past home. */
export const DISPLACEMENT_BITS = 5
export const MAX_DISPLACEMENT = 2 ** DISPLACEMENT_BITS - 2
/** Owners are stored as 32-bit integers; a larger one (and ESCAPE_OWNER itself) is kept in the stash hash. */
export const OWNER_BYTES = 4
export const ESCAPE_OWNER = 2 ** 32 - 1
/**
 * Bytes of a full segment string: 32 MiB minus room for the sds header (9 bytes) and its terminator, so
 * jemalloc serves it from its 32 MiB size class exactly (a string 1 byte larger would take the 40 MiB class).
 */
export const MAX_SEGMENT_BYTES = 32 * 1024 * 1024 - 16
/** Slots past the last home in each segment, so probing never has to wrap to the next key. */
export const SEGMENT_TAIL = MAX_DISPLACEMENT + 1
/** Homes are packed in 32 bits and segment numbers in 16 bits in the scripts' arguments. */
export const MAX_BUCKETS = 2 ** 32 - 1
export const MAX_CAPACITY = Math.floor(MAX_BUCKETS * TARGET_LOAD)

export interface PhotoMapLayout {
  /** Layout format; 2 is this table (1 was the hash-bucket map). */
  version: 2
  /** Mappings the map is sized for (TARGET_LOAD per slot). */
  capacity: number
  /** Table slots B (the modulus of the home); each holds one mapping. */
  buckets: number
  /** Segment string keys; each holds `segmentSlots` homes plus SEGMENT_TAIL overflow slots. */
  segments: number
  segmentSlots: number
  slotBytes: number
  /** Bytes of the displacement + quotient field at the start of a slot. */
  dqBytes: number
  /** Keys are `<prefix>:<generation>:…`; a rebuild with another capacity uses the next one. */
  generation: number
}

/** Bits of the largest quotient (2^64 − 1) div buckets. */
export function quotientBits(buckets: number): number {
  return (((1n << 64n) - 1n) / BigInt(buckets)).toString(2).length
}

function dqBytesFor(buckets: number): number {
  return Math.ceil((DISPLACEMENT_BITS + quotientBits(buckets)) / 8)
}

/**
 * The layout for a capacity. Below one segment's worth the table has exactly the slots it needs; above
 * it, every segment is full-sized (the last one too), because jemalloc would round a partial segment up
 * to its size class anyway: the extra slots lower the load instead of being wasted.
 */
export function layoutFor(capacity: number, generation = 1): PhotoMapLayout {
  if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`Capacity ${capacity} is not a positive integer.`)
  if (capacity > MAX_CAPACITY) throw new RangeError(`Capacity ${capacity} is too large (at most ${MAX_CAPACITY}).`)
  if (!Number.isSafeInteger(generation) || generation < 1) throw new RangeError(`Generation ${generation} is not a positive integer.`)
  const wanted = Math.ceil(capacity / TARGET_LOAD)
  // More slots only shorten the quotient, so bytes sized for `wanted` fit the final count too.
  const dqBytes = dqBytesFor(wanted)
  const slotBytes = dqBytes + OWNER_BYTES
  const fullSegment = Math.floor(MAX_SEGMENT_BYTES / slotBytes) - SEGMENT_TAIL
  const segments = Math.ceil(wanted / fullSegment)
  const segmentSlots = segments === 1 ? wanted : fullSegment
  return {version: 2, capacity, buckets: Math.min(MAX_BUCKETS, segments * segmentSlots), segments, segmentSlots, slotBytes, dqBytes, generation}
}

/** Bytes of one segment string. */
export function segmentBytes(layout: PhotoMapLayout): number {
  return (layout.segmentSlots + SEGMENT_TAIL) * layout.slotBytes
}

export function isLayout(v: unknown): v is PhotoMapLayout {
  if (typeof v !== 'object' || v === null) return false
  const l = v as Record<string, unknown>
  const int = (x: unknown, min: number): x is number => Number.isSafeInteger(x) && (x as number) >= min
  if (l.version !== 2 || !int(l.capacity, 1) || !int(l.generation, 1) || !int(l.buckets, 1) || !int(l.segments, 1)) return false
  if (!int(l.segmentSlots, 1) || !int(l.slotBytes, 1) || !int(l.dqBytes, 1)) return false
  return (
    l.buckets <= MAX_BUCKETS &&
    l.segments <= 65_535 &&
    l.buckets <= l.segments * l.segmentSlots &&
    l.buckets > (l.segments - 1) * l.segmentSlots &&
    l.dqBytes * 8 >= DISPLACEMENT_BITS + quotientBits(l.buckets) &&
    l.slotBytes === l.dqBytes + OWNER_BYTES
  )
}

/** A layout written by the hash-bucket map (format 1), which a rebuild replaces. */
export function isLegacyLayout(v: unknown): v is {capacity: number; buckets: number; fieldBytes: number; generation: number} {
  if (typeof v !== 'object' || v === null) return false
  const l = v as Record<string, unknown>
  return l.version === undefined && Number.isSafeInteger(l.generation) && Number.isSafeInteger(l.fieldBytes)
}

// ---- the 64-bit permutation, on two 32-bit halves (BigInt arithmetic is ~10× slower) ----

const ROUND_KEYS = [0x9e3779b9, 0x7f4a7c15, 0xf39cc060, 0x5ced8a4b] as const

function fmix32(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

const scratch = new DataView(new ArrayBuffer(8))

/** Splits an unsigned 64-bit id into its permuted halves [hi, lo]. */
function permute(id: bigint, out: Uint32Array): void {
  scratch.setBigUint64(0, id)
  let hi = scratch.getUint32(0)
  let lo = scratch.getUint32(4)
  for (const k of ROUND_KEYS) {
    const t = (hi ^ fmix32((lo ^ k) >>> 0)) >>> 0
    hi = lo
    lo = t
  }
  out[0] = hi
  out[1] = lo
}

function unpermute(hi: number, lo: number): bigint {
  for (let i = ROUND_KEYS.length - 1; i >= 0; i--) {
    const t = hi
    hi = (lo ^ fmix32((t ^ ROUND_KEYS[i]!) >>> 0)) >>> 0
    lo = t
  }
  scratch.setUint32(0, hi)
  scratch.setUint32(4, lo)
  return scratch.getBigUint64(0)
}

const halves = new Uint32Array(2)

/**
 * Home slot of an id; q is written big-endian into `into` at `offset` (dqBytes bytes, the top
 * DISPLACEMENT_BITS of the first byte left 0), so a batch shares one buffer. Long division of the 64-bit
 * x by B in 16-bit digits keeps every step exact in a double (B < 2^32).
 */
export function locate(id: bigint, layout: PhotoMapLayout, into: Buffer, offset: number): number {
  if (typeof id !== 'bigint' || id < 0n || id > 0xffffffffffffffffn) throw new RangeError(`Photo id ${String(id)} is not an unsigned 64-bit integer.`)
  permute(id, halves)
  const b = layout.buckets
  const hi = halves[0]!
  const lo = halves[1]!
  const qHi = Math.floor(hi / b)
  const t1 = (hi % b) * 65536 + (lo >>> 16)
  const q1 = Math.floor(t1 / b)
  const t2 = (t1 % b) * 65536 + (lo & 0xffff)
  const q2 = Math.floor(t2 / b)
  // q = qHi·2^32 + q1·2^16 + q2, big-endian into dqBytes bytes (q fits: see isLayout).
  const end = offset + layout.dqBytes
  let pos = end - 1
  for (let i = 0; i < 2 && pos >= offset; i++, pos--) into[pos] = (q2 >>> (8 * i)) & 0xff
  for (let i = 0; i < 2 && pos >= offset; i++, pos--) into[pos] = (q1 >>> (8 * i)) & 0xff
  for (let i = 0; i < 4 && pos >= offset; i++, pos--) into[pos] = (qHi >>> (8 * i)) & 0xff
  for (; pos >= offset; pos--) into[pos] = 0
  return t2 % b
}

/** The id stored at `home` with quotient bytes `q` (dqBytes, displacement bits ignored): the inverse of locate. */
export function idAt(home: number, q: Buffer, layout: PhotoMapLayout): bigint {
  if (q.length !== layout.dqBytes) throw new RangeError(`Quotient of ${q.length} bytes; the layout uses ${layout.dqBytes}.`)
  if (!Number.isSafeInteger(home) || home < 0 || home >= layout.buckets) throw new RangeError(`Home ${home} is outside the table.`)
  const bits = BigInt(layout.dqBytes * 8 - DISPLACEMENT_BITS)
  const quotient = BigInt(`0x${q.toString('hex')}`) & ((1n << bits) - 1n)
  const x = quotient * BigInt(layout.buckets) + BigInt(home)
  if (x > 0xffffffffffffffffn) throw new RangeError('Home and quotient do not come from an id.')
  return unpermute(Number(x >> 32n), Number(x & 0xffffffffn))
}
