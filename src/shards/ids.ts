import {UserError} from '../errors.js'

/**
 * The 64-bit id: 41 bits of milliseconds since a custom epoch | 13 bits of logical shard | 10 bits of
 * a per-shard sequence. Ids sort by time first, so "latest photos" is "largest ids".
 *
 * In TypeScript an id is an unsigned 64-bit bigint (never a JS number: they lose bits above 2^53).
 * Postgres stores it in a signed bigint with the same bits: ids made in the first 2^40 ms (34.8 years)
 * after the epoch are positive and sort correctly in SQL; after that Postgres shows them as negative
 * numbers (parseId and decodeId accept that form too) and SQL ordering across that boundary breaks. With the
 * default epoch (2011-01-01) the boundary is 2045-11-03; pick a later epoch for a new deployment.
 */
export const TIME_BITS = 41
export const SHARD_BITS = 13
export const SEQ_BITS = 10
export const MAX_SHARD = (1 << SHARD_BITS) - 1 // 8191
export const MAX_SEQ = (1 << SEQ_BITS) - 1 // 1023
export const MAX_MS = (1n << BigInt(TIME_BITS)) - 1n
export const MAX_ID = (1n << 64n) - 1n
const MIN_SIGNED_ID = -(1n << 63n)
export const DEFAULT_EPOCH = '2011-01-01T00:00:00Z'

const SHARD_SHIFT = BigInt(SEQ_BITS)
const TIME_SHIFT = BigInt(SHARD_BITS + SEQ_BITS)

export interface IdParts {
  msSinceEpoch: bigint
  shard: number
  seq: number
}

export interface DecodedId extends IdParts {
  id: bigint
  time: Date
}

/** Milliseconds since 1970 of an ISO time, as the epoch argument of the other functions. */
export function epochMs(iso: string): bigint {
  const ms = Date.parse(iso)
  if (Number.isNaN(ms)) throw new RangeError(`Epoch "${iso}" is not an ISO time.`)
  return BigInt(ms)
}

export function encodeId(parts: IdParts): bigint {
  const {msSinceEpoch, shard, seq} = parts
  if (typeof msSinceEpoch !== 'bigint' || msSinceEpoch < 0n || msSinceEpoch > MAX_MS) {
    throw new RangeError(`Time ${String(msSinceEpoch)} ms since the epoch is outside 0..${MAX_MS} (41 bits).`)
  }
  if (!Number.isInteger(shard) || shard < 0 || shard > MAX_SHARD) {
    throw new RangeError(`Shard ${shard} is outside 0..${MAX_SHARD}.`)
  }
  if (!Number.isInteger(seq) || seq < 0 || seq > MAX_SEQ) throw new RangeError(`Sequence ${seq} is outside 0..${MAX_SEQ}.`)
  return (msSinceEpoch << TIME_SHIFT) | (BigInt(shard) << SHARD_SHIFT) | BigInt(seq)
}

/**
 * Splits an id. Accepts the unsigned form and the signed form Postgres shows for ids made later than
 * 2^40 ms after the epoch (see above).
 */
export function decodeId(id: bigint, epoch: bigint): DecodedId {
  if (typeof id !== 'bigint' || id < MIN_SIGNED_ID || id > MAX_ID) throw new RangeError(`${String(id)} is not a 64-bit id.`)
  const bits = BigInt.asUintN(64, id)
  const msSinceEpoch = bits >> TIME_SHIFT
  return {
    id: bits,
    time: new Date(Number(epoch + msSinceEpoch)),
    msSinceEpoch,
    shard: Number((bits >> SHARD_SHIFT) & BigInt(MAX_SHARD)),
    seq: Number(bits & BigInt(MAX_SEQ)),
  }
}

/**
 * Parses an id typed by a person: a decimal integer of 64 bits, unsigned (0..2^64-1) or in the signed form
 * Postgres shows (-2^63..-1, see above), returned unsigned.
 */
export function parseId(text: string): bigint {
  const t = text.trim()
  const fix = 'Pass the id as a decimal integer between 0 and 18446744073709551615 (or as Postgres shows it, down to -9223372036854775808).'
  if (!/^-?\d+$/.test(t)) throw new UserError(`Id "${text}" is not a number.`, {fix})
  const id = BigInt(t)
  if (id > MAX_ID) throw new UserError(`Id ${t} is larger than 64 bits.`, {fix})
  if (id < MIN_SIGNED_ID) throw new UserError(`Id ${t} is below -9223372036854775808, the smallest signed 64-bit integer.`, {fix})
  return BigInt.asUintN(64, id)
}

/**
 * Why ids cannot be made now with this epoch (it is in the future, or more than 2^41 ms ≈ 69.7 years ago),
 * or undefined when they can.
 */
export function epochProblem(epoch: bigint, now: number = Date.now()): string | undefined {
  const ms = BigInt(Math.floor(now)) - epoch
  const iso = new Date(Number(epoch)).toISOString()
  if (ms < 0n) return `The epoch ${iso} is in the future, and ids hold the time since it.`
  if (ms > MAX_MS) {
    return `The epoch ${iso} is more than 2^41 ms (69.7 years) ago: ids ran out of time bits on ${new Date(Number(epoch + MAX_MS)).toISOString()}.`
  }
  return undefined
}

/**
 * Makes ids in this process, like next_id() does in Postgres: per shard, ids are strictly increasing.
 * Within one millisecond the sequence counts up; when it runs out (1024 ids in one ms) or the clock
 * steps back, the id borrows the next millisecond instead of repeating one (it cannot wait: it is
 * synchronous). Its time is then at most a few ms ahead of the clock.
 */
export class IdGenerator {
  /** Per shard: the last (ms << 10 | seq) handed out. */
  private readonly last = new Map<number, bigint>()

  constructor(private readonly epoch: bigint) {}

  next(shard: number, now: number = Date.now()): bigint {
    if (!Number.isInteger(shard) || shard < 0 || shard > MAX_SHARD) {
      throw new RangeError(`Shard ${shard} is outside 0..${MAX_SHARD}.`)
    }
    const ms = BigInt(Math.floor(now)) - this.epoch
    if (ms < 0n) throw new RangeError(`The time ${new Date(now).toISOString()} is before the epoch.`)
    const prev = this.last.get(shard)
    const fresh = ms << SHARD_SHIFT
    const counter = prev === undefined || prev < fresh ? fresh : prev + 1n
    const msOfId = counter >> SHARD_SHIFT
    if (msOfId > MAX_MS) throw new RangeError('The 41-bit time of the id format has run out for this epoch.')
    this.last.set(shard, counter)
    return encodeId({msSinceEpoch: msOfId, shard, seq: Number(counter & BigInt(MAX_SEQ))})
  }
}

const generators = new Map<bigint, IdGenerator>()

/** A new id for a shard made in TypeScript (one IdGenerator per epoch in this process). */
export function newId(shard: number, epoch: bigint, now?: number): bigint {
  let gen = generators.get(epoch)
  if (!gen) {
    gen = new IdGenerator(epoch)
    generators.set(epoch, gen)
  }
  return gen.next(shard, now)
}
