/**
 * Where a photo id lives in the Redis photo→owner map: which hash ("bucket") and which field.
 *
 * Why not Instagram's `id / 1000`: their media ids were a dense counter, so every run of 1000 ids
 * filled one hash. Our ids are 41 bits of ms | 13 bits of shard | 10 bits of sequence: at one photo a
 * minute each `id / 1000` bucket holds one photo (a whole Redis key per mapping), and at 1000 photos
 * per ms bursts fill them unevenly. Any bucket made of a slice of the id's bits fills at the upload rate.
 *
 * The scheme here:
 *   x      = permute(id)          a bijection of the 64-bit space (4 Feistel rounds of murmur3 fmix32),
 *                                 so x is spread evenly whatever the pattern of the ids (time, shard, seq)
 *   bucket = x mod B              B = ceil(capacity / TARGET_FILL): the fill is mappings / B, set by how
 *                                 many photos the map holds, never by how fast they were uploaded
 *   field  = x div B              exactly the bits of x the bucket does not imply, big-endian binary in
 *                                 fieldBytes bytes (6 for B ≥ 2^16, 5 for B ≥ 2^24)
 *   value  = the user id in decimal: listpack stores it as an integer (5 bytes up to 8,388,607).
 * Read and write need nothing but the id and B. The id comes back as permute⁻¹(field·B + bucket).
 *
 * Why a binary field and not an integer: the bucket implies only log2(B) ≈ 17 bits at 10 M mappings,
 * so the field carries 64 − 17 = 47 bits of information whatever we do (a time-based id is sparse).
 * Listpack's integer encodings jump from 32 bits (5 bytes + 1) to 64 bits (9 + 1); a 6-byte string
 * costs 6 + 2. Measured (INFO used_memory, Redis 7.0): 15.1 bytes/mapping at 10 M mappings with the
 * binary field (test/bench/photo-map.ts), 17.6 with the same field as an int64. (A 32-bit integer field
 * would need B ≥ 2^32 buckets: one mapping per key.)
 *
 * Why TARGET_FILL = 68: every bucket must stay under Redis's default hash-max-listpack-entries (128).
 * The fill of B buckets is Poisson(mappings / B); at mean 68 the expected number of the ~150 k buckets
 * over 128 at full capacity is ~5e-6, and means of 60–85 cost the same memory (jemalloc size classes). Past
 * the capacity buckets start to overflow into hashtables (correct, but 5× bigger): `feedops shards
 * reindex-photos --capacity N` rebuilds the map with more buckets.
 */

export const TARGET_FILL = 68
/** Redis's default hash-max-listpack-entries; the layout keeps buckets under it. */
export const LISTPACK_MAX_ENTRIES = 128
/** The longest element we write: a 64-bit user id in decimal (20) — under the default -value (64). */
export const LONGEST_ELEMENT = 20
export const MAX_BUCKETS = 2 ** 31

export interface PhotoMapLayout {
  /** Mappings the map is sized for (fill TARGET_FILL per bucket). */
  capacity: number
  buckets: number
  fieldBytes: number
  /** Bucket keys are `<prefix>:<generation>:<bucket>`; a rebuild with another capacity uses the next one. */
  generation: number
}

export function layoutFor(capacity: number, generation = 1): PhotoMapLayout {
  if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`Capacity ${capacity} is not a positive integer.`)
  if (!Number.isSafeInteger(generation) || generation < 1) throw new RangeError(`Generation ${generation} is not a positive integer.`)
  const buckets = Math.ceil(capacity / TARGET_FILL)
  if (buckets > MAX_BUCKETS) throw new RangeError(`Capacity ${capacity} is too large (at most ${MAX_BUCKETS * TARGET_FILL}).`)
  return {capacity, buckets, fieldBytes: fieldBytesFor(buckets), generation}
}

/** Bytes of the largest quotient (2^64 − 1) div buckets. */
export function fieldBytesFor(buckets: number): number {
  const maxField = ((1n << 64n) - 1n) / BigInt(buckets)
  return Math.max(1, Math.ceil(maxField.toString(16).length / 2))
}

export function isLayout(v: unknown): v is PhotoMapLayout {
  if (typeof v !== 'object' || v === null) return false
  const l = v as Record<string, unknown>
  return (
    Number.isSafeInteger(l.capacity) &&
    Number.isSafeInteger(l.buckets) &&
    Number.isSafeInteger(l.generation) &&
    l.fieldBytes === fieldBytesFor(l.buckets as number) &&
    (l.buckets as number) >= 1 &&
    (l.buckets as number) <= MAX_BUCKETS
  )
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
 * Bucket and field of an id. The field is written into `into` at `offset` (fieldBytes bytes), so a
 * batch shares one buffer. Long division of the 64-bit x by B in 16-bit digits keeps every step exact
 * in a double.
 */
export function locate(id: bigint, layout: PhotoMapLayout, into: Buffer, offset: number): number {
  if (id < 0n || id > 0xffffffffffffffffn) throw new RangeError(`Photo id ${String(id)} is not an unsigned 64-bit integer.`)
  permute(id, halves)
  const b = layout.buckets
  const hi = halves[0]!
  const lo = halves[1]!
  const qHi = Math.floor(hi / b)
  const t1 = (hi % b) * 65536 + (lo >>> 16)
  const q1 = Math.floor(t1 / b)
  const t2 = (t1 % b) * 65536 + (lo & 0xffff)
  const q2 = Math.floor(t2 / b)
  // field = qHi·2^32 + q1·2^16 + q2, big-endian, keeping only the low fieldBytes bytes (the rest are 0).
  const n = layout.fieldBytes
  const end = offset + n
  let digit = q2
  let pos = end - 1
  for (let i = 0; i < 2 && pos >= offset; i++, pos--) into[pos] = (digit >>> (8 * i)) & 0xff
  digit = q1
  for (let i = 0; i < 2 && pos >= offset; i++, pos--) into[pos] = (digit >>> (8 * i)) & 0xff
  digit = qHi
  for (let i = 0; i < 4 && pos >= offset; i++, pos--) into[pos] = (digit >>> (8 * i)) & 0xff
  return t2 % b
}

/** The id stored at (bucket, field): the inverse of locate. */
export function idAt(bucket: number, field: Buffer, layout: PhotoMapLayout): bigint {
  if (field.length !== layout.fieldBytes) throw new RangeError(`Field of ${field.length} bytes; the layout uses ${layout.fieldBytes}.`)
  const f = BigInt(`0x${field.toString('hex')}`)
  const x = f * BigInt(layout.buckets) + BigInt(bucket)
  if (x > 0xffffffffffffffffn) throw new RangeError('Bucket and field do not come from an id.')
  return unpermute(Number(x >> 32n), Number(x & 0xffffffffn))
}
