import {createHash} from 'node:crypto'

import {MAX_SHARD} from './ids.js'

const MASK64 = (1n << 64n) - 1n

/** splitmix64's finalizer: a stable, well-mixed 64-bit hash of a 64-bit integer. */
export function mix64(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & MASK64
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64
  return z ^ (z >> 31n)
}

/**
 * A user's logical shard: hash of the user id over the logical shard count. Hashing (not id modulo)
 * spreads consecutive ids and any id pattern evenly; it must never change, or rows become unreachable.
 */
export function shardOfUser(userId: bigint, logical: number): number {
  checkLogical(logical)
  if (userId < 0n || userId > MASK64) throw new RangeError(`User id ${userId} is not an unsigned 64-bit integer.`)
  return Number(mix64(userId) % BigInt(logical))
}

/**
 * The logical shard that holds a username's claim: a hash of the lower-cased name over the logical shard
 * count, so "Alice" and "alice" meet on one shard and each name has exactly one place to be decided.
 */
export function shardOfUsername(username: string, logical: number): number {
  checkLogical(logical)
  const h = createHash('sha256').update(username.toLowerCase()).digest().readBigUInt64BE(0)
  return Number(h % BigInt(logical))
}

function checkLogical(logical: number): void {
  if (!Number.isInteger(logical) || logical < 1 || logical > MAX_SHARD + 1) {
    throw new RangeError(`Logical shard count ${logical} is outside 1..${MAX_SHARD + 1}.`)
  }
}

/** Schema of a logical shard: s0000 … s8191. */
export function schemaName(shard: number): string {
  if (!Number.isInteger(shard) || shard < 0 || shard > MAX_SHARD) throw new RangeError(`Shard ${shard} is outside 0..${MAX_SHARD}.`)
  return `s${String(shard).padStart(4, '0')}`
}

/** Inverse of schemaName; null for any other name. */
export function shardOfSchema(name: string): number | null {
  const m = /^s(\d{4})$/.exec(name)
  if (!m) return null
  const n = Number(m[1])
  return n <= MAX_SHARD ? n : null
}

/**
 * Deterministic assignment of logical shards 0..logical-1 to servers by weight (smooth weighted
 * round-robin, as nginx does): equal weights give shard i → server i mod n; a server of weight 2 gets
 * twice the shards, interleaved.
 */
export function assignShards(logical: number, servers: readonly {name: string; weight?: number}[]): string[] {
  if (servers.length === 0) throw new RangeError('No servers to place shards on.')
  const weights = servers.map((s) => s.weight ?? 1)
  const total = weights.reduce((a, b) => a + b, 0)
  const current = servers.map(() => 0)
  const out: string[] = []
  for (let shard = 0; shard < logical; shard++) {
    let best = 0
    for (let i = 0; i < servers.length; i++) {
      current[i]! += weights[i]!
      if (current[i]! > current[best]!) best = i
    }
    current[best]! -= total
    out.push(servers[best]!.name)
  }
  return out
}
