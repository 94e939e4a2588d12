import {endianness} from 'node:os'

/**
 * Where a photo id lives in the Redis photo→owner map: which hash ("bucket") and which field. The Lua
 * scripts in scripts.ts do the same arithmetic in Redis; this module is its mirror for tests, for reading
 * a bucket back, and the id permutation that the client applies before sending an id.
 *
 * Why not Instagram's `id / 1000`: their media ids were a dense counter, so every run of 1000 ids
 * filled one hash. Our ids are 41 bits of ms | 13 bits of shard | 10 bits of sequence: at one photo a
 * minute each `id / 1000` bucket holds one photo (a whole Redis key per mapping), and at 1000 photos
 * per ms bursts fill them unevenly. Any bucket made of a slice of the id's bits fills at the upload rate.
 *
 * The scheme here:
 *   x      = permute(id)          a bijection of the 64-bit space (4 Feistel rounds of murmur3 fmix32),
 *                                 so x is spread evenly whatever the pattern of the ids (time, shard, seq)
 *   bucket = linear hashing on the low bits of x: with level L and split pointer S (2^L + S buckets),
 *            b = x mod 2^L, and b = x mod 2^(L+1) when b < S (that bucket was already split this level)
 *   field  = x >> 8·floor((l+2)/8) for the bucket's level l (L or L+1): the whole bytes of x the bucket does
 *            not imply, less the last one when the bucket implies all but m ≤ 2 of its bits, as a big-endian
 *            binary string (8 bytes below level 6, 7 from level 6, 6 from 14, 5 from 22, 4 from 30)
 *   value  = the user id in decimal, times 2^m plus those m spare bits of x (bits l .. l+m-1), where
 *            m = 64 − 8·(field bytes) − l is 2 at levels 6, 14, 22, 30, 1 at levels 7, 15, 23, 31 and 0
 *            elsewhere: listpack keeps the value as an integer (4 bytes up to 8,388,607: owners below
 *            2^21 at m = 2), so the spare bits cost nothing and the field is a byte shorter.
 * The id comes back as permute⁻¹(field << (64 − 8·bytes) | spare bits << l | low l bits of b).
 * Bucket numbers come from the low 32 bits of x, so levels go up to 31: 2^32 buckets, about 240 billion
 * mappings.
 *
 * Collisions of the short field: two ids of one bucket can differ only in the spare bits and so share a
 * field. The first keeps the field (a lookup compares the value's spare bits with its own); each other one
 * goes to the bucket's overflow hash `<bucket>+` under its wide field, x >> 8·floor(l/8) (one byte more,
 * the spare bits included), with the plain user id as value. The two widths never mix up. A short field
 * is held once (in the bucket, or in the overflow when the bucket is full); a wide one exists only while
 * another id holds its short field (a delete moves a wide sibling into the freed short field). With
 * random ids a collision is about one in 2^(8·bytes) per pair in a bucket: tests craft them.
 *
 * Growth: the map keeps its mapping count n in its state hash; when n > SPLIT_FILL × buckets, the write
 * that crossed it splits bucket S (its entries with bit L of x set move to bucket S + 2^L, the others
 * stay; bit L is in the field's last byte, or the value's lowest spare bit) and S moves on; when S reaches
 * 2^L the level goes up and S is 0 again. One split at a time, inside the atomic write script, so the map
 * never has a capacity and is never rebuilt to grow: readers need only L and S, which the lookup script
 * reads itself (and answers with the values, for the client to take the user ids out).
 *
 * Overflow: a bucket not yet split this level covers twice the hash range of a split one, so near the end
 * of a level it holds up to 2 × SPLIT_FILL on average, and a few reach Redis's listpack limit (128 entries
 * by default; one more and Redis turns the hash into a hashtable, 5× bigger, for good). A bucket at the
 * limit takes further new fields in an overflow hash `<bucket>+`; a lookup that misses in the bucket
 * tries its overflow; a split empties both and writes its two halves in the new level's layout (fields
 * a byte shorter from levels 5 → 6, 13 → 14, 21 → 22, 29 → 30; values re-encoded). So every key stays a
 * listpack.
 *
 * Why SPLIT_FILL = 60: memory per mapping falls with the mean fill (each key costs ~75 bytes besides its
 * entries, and its listpack's jemalloc size class rounds up), and lookups slow with it (a listpack is
 * searched from its start); 60 is the lowest fill measured at ≤ 16 bytes per mapping at 1 M mappings (58:
 * 15.99, 60: 15.94), and buckets not yet split this level still stay under 128 entries to the end of a level
 * (a few spill into overflow hashes). See BENCHMARKS.md.
 */

export const SPLIT_FILL = 60
/** Redis's default hash-max-listpack-entries: a bucket never holds more. */
export const LISTPACK_MAX_ENTRIES = 128
/** The longest element we write: a 64-bit user id × 4 + 3 in decimal (20 digits), under the default -value (64). */
export const LONGEST_ELEMENT = 20

/** Linear-hashing state of one generation of the map. */
export interface MapState {
  /** Bucket keys are `<prefix>:<generation>:<bucket>`; a rebuild fills the next generation. */
  generation: number
  level: number
  split: number
  /** 2^level + split. */
  buckets: number
  /** Mappings held (kept by the scripts). */
  mappings: number
}

export function stateOf(generation: number, level: number, split: number, mappings: number): MapState {
  return {generation, level, split, buckets: 2 ** level + split, mappings}
}

/** At most this many bits of x beyond the bucket's go in the value rather than in a field byte of their own. */
export const SPARE_BITS = 2

/** Bytes of the field in a bucket of level l. */
export function fieldBytesAt(level: number): number {
  return 8 - Math.floor((level + SPARE_BITS) / 8)
}

/** Bits of x carried in the value (the user id × 2^m + those bits) in a bucket of level l. */
export function spareBitsAt(level: number): number {
  return Math.max(0, 64 - 8 * fieldBytesAt(level) - level)
}

/** The level of bucket b under a state: L + 1 for buckets already split this level (and their new halves). */
export function levelOf(bucket: number, state: Pick<MapState, 'level' | 'split'>): number {
  return bucket < state.split || bucket >= 2 ** state.level ? state.level + 1 : state.level
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
const MAX_U64 = 0xffffffffffffffffn
// where each id's high and low 32-bit halves sit in a Uint32Array view of a BigUint64Array
const [HI, LO] = endianness() === 'LE' ? [1, 0] : [0, 1]

/** Throws unless `v` is an unsigned 64-bit integer (a photo or user id). */
export function checkU64(v: bigint, what: 'Photo id' | 'User id'): void {
  if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) throw new RangeError(`${what} ${String(v)} is not an unsigned 64-bit integer.`)
}

/**
 * x = permute(id) of every id, 8 big-endian bytes each, in one buffer (what the scripts get). A lookup
 * packs 1000 ids per call: the rounds are written out and the halves read from one typed array, about
 * 4× faster than one id at a time through a DataView (measured).
 */
export function permuteMany(ids: readonly bigint[]): Buffer {
  const n = ids.length
  const big = new BigUint64Array(n)
  for (let i = 0; i < n; i++) {
    checkU64(ids[i]!, 'Photo id')
    big[i] = ids[i]!
  }
  const halves = new Uint32Array(big.buffer)
  const out = Buffer.allocUnsafe(n * 8)
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  const [k0, k1, k2, k3] = ROUND_KEYS
  for (let i = 0; i < n; i++) {
    let hi = halves[2 * i + HI]!
    let lo = halves[2 * i + LO]!
    let t = (hi ^ fmix32((lo ^ k0) >>> 0)) >>> 0
    hi = lo
    lo = t
    t = (hi ^ fmix32((lo ^ k1) >>> 0)) >>> 0
    hi = lo
    lo = t
    t = (hi ^ fmix32((lo ^ k2) >>> 0)) >>> 0
    hi = lo
    lo = t
    t = (hi ^ fmix32((lo ^ k3) >>> 0)) >>> 0
    view.setUint32(8 * i, lo)
    view.setUint32(8 * i + 4, t)
  }
  return out
}

/** permute⁻¹: the id whose permuted form is x (tests use it to craft ids that share a bucket and field). */
export function unpermute(x: bigint): bigint {
  let hi = Number(x >> 32n)
  let lo = Number(x & 0xffffffffn)
  for (let i = ROUND_KEYS.length - 1; i >= 0; i--) {
    const t = hi
    hi = (lo ^ fmix32((t ^ ROUND_KEYS[i]!) >>> 0)) >>> 0
    lo = t
  }
  scratch.setUint32(0, hi)
  scratch.setUint32(4, lo)
  return scratch.getBigUint64(0)
}

export interface Location {
  bucket: number
  /** The field (short when spareBits > 0). */
  field: Buffer
  /** m, and x's m bits that the value carries beside the user id. */
  spareBits: number
  spare: number
  /** The field with the spare bits' byte included: the key of an id whose short field another id holds. */
  wide: Buffer
}

/** Where an id goes under a state: what the scripts compute in Redis. */
export function locate(id: bigint, state: Pick<MapState, 'level' | 'split'>): Location {
  const x = permuteMany([id])
  const low = x.readUInt32BE(4)
  let level = state.level
  let bucket = low % 2 ** level
  if (bucket < state.split) bucket = low % 2 ** ++level
  const bytes = fieldBytesAt(level)
  const spareBits = spareBitsAt(level)
  const spare = Math.floor(low / 2 ** level) % 2 ** spareBits
  return {bucket, field: x.subarray(0, bytes), spareBits, spare, wide: x.subarray(0, spareBits > 0 ? bytes + 1 : bytes)}
}

/** The value stored for an owner at a location: the user id × 2^m + the spare bits, in decimal. */
export function valueOf(owner: bigint, at: Pick<Location, 'spareBits' | 'spare'>): string {
  return ((owner << BigInt(at.spareBits)) | BigInt(at.spare)).toString()
}

/** The id and owner of an entry (bucket, field, value) under a state: the inverse of locate and valueOf. */
export function entryAt(bucket: number, field: Buffer, value: Buffer | string, state: Pick<MapState, 'level' | 'split'>): {id: bigint; owner: bigint} {
  const level = levelOf(bucket, state)
  const bytes = fieldBytesAt(level)
  const wide = field.length === bytes + 1 && spareBitsAt(level) > 0
  if (field.length !== bytes && !wide) throw new RangeError(`Field of ${field.length} bytes in a bucket of level ${level}.`)
  const m = wide ? 0n : BigInt(spareBitsAt(level)) // a wide field carries the spare bits itself
  const v = BigInt(value.toString())
  const shift = BigInt(64 - 8 * field.length)
  const x = (BigInt(`0x${field.toString('hex')}`) << shift) | ((v & ((1n << m) - 1n)) << BigInt(level)) | (BigInt(bucket) & ((1n << shift) - 1n))
  return {id: unpermute(x), owner: v >> m}
}
