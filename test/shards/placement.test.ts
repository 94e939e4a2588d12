import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {assignShards, mix64, schemaName, shardOfSchema, shardOfUser, shardOfUsername} from '../../src/shards/placement.js'

describe('placement', () => {
  it('is stable: the same user id always lands on the same shard (pinned values)', () => {
    // splitmix64(0) is a published test vector.
    assert.equal(mix64(0n), 0xe220a8397b1dcdafn)
    // Pinned: if these change, every existing row would be looked for in the wrong shard.
    const pinned = [1n, 2n, 3n, 1000n, 123456789n, (1n << 63n) + 7n].map((id) => shardOfUser(id, 8192))
    assert.deepEqual(pinned, [7361, 5838, 4077, 328, 5753, 4008])
    assert.equal(shardOfUser(1n, 64), Number(mix64(1n) % 64n))
  })

  it('spreads 100k consecutive user ids evenly over 64 shards (chi-square bound)', () => {
    const counts = new Array<number>(64).fill(0)
    const n = 100_000
    for (let id = 1; id <= n; id++) counts[shardOfUser(BigInt(id), 64)]!++
    const expected = n / 64
    const chi2 = counts.reduce((a, c) => a + (c - expected) ** 2 / expected, 0)
    // 63 degrees of freedom: the 99.9th percentile is ≈ 103.4.
    assert.ok(chi2 < 103.4, `chi-square ${chi2.toFixed(1)} too large: ${counts.join(',')}`)
    // Not the id modulo: consecutive ids do not walk the shards in order.
    const seq = [1n, 2n, 3n, 4n].map((id) => shardOfUser(id, 64))
    assert.notDeepEqual(seq, [1, 2, 3, 4])
  })

  it('spreads strided ids too (ids that are all multiples of 64)', () => {
    const counts = new Array<number>(64).fill(0)
    for (let i = 1; i <= 64_000; i++) counts[shardOfUser(BigInt(i * 64), 64)]!++
    const chi2 = counts.reduce((a, c) => a + (c - 1000) ** 2 / 1000, 0)
    assert.ok(chi2 < 103.4, `chi-square ${chi2.toFixed(1)}`)
  })

  it('rejects bad logical counts and ids', () => {
    assert.throws(() => shardOfUser(1n, 0), RangeError)
    assert.throws(() => shardOfUser(1n, 8193), RangeError)
    assert.throws(() => shardOfUser(-1n, 64), RangeError)
  })

  it('places a username by its lower-cased form, stably and evenly', () => {
    assert.equal(shardOfUsername('Alice_1', 8192), shardOfUsername('alice_1', 8192))
    assert.equal(shardOfUsername('ALICE_1', 64), shardOfUsername('alice_1', 64))
    // Pinned: changing the hash would strand every claim made so far.
    assert.deepEqual(['alice', 'bob', 'user1'].map((n) => shardOfUsername(n, 8192)), [175, 1754, 1187])
    const counts = new Array<number>(64).fill(0)
    for (let i = 0; i < 64_000; i++) counts[shardOfUsername(`user${i}`, 64)]!++
    assert.ok(Math.min(...counts) > 800 && Math.max(...counts) < 1200, `${Math.min(...counts)}..${Math.max(...counts)}`)
    assert.throws(() => shardOfUsername('alice', 0), RangeError)
  })

  it('names schemas s0000…s8191 and reads them back', () => {
    assert.equal(schemaName(0), 's0000')
    assert.equal(schemaName(42), 's0042')
    assert.equal(schemaName(8191), 's8191')
    assert.throws(() => schemaName(8192), RangeError)
    assert.equal(shardOfSchema('s0042'), 42)
    assert.equal(shardOfSchema('public'), null)
    assert.equal(shardOfSchema('s9999'), null)
  })

  it('assigns shards to servers round-robin, or by weight, deterministically', () => {
    assert.deepEqual(assignShards(6, [{name: 'a'}, {name: 'b'}, {name: 'c'}]), ['a', 'b', 'c', 'a', 'b', 'c'])
    const weighted = assignShards(3000, [{name: 'a', weight: 2}, {name: 'b', weight: 1}])
    assert.equal(weighted.filter((s) => s === 'a').length, 2000)
    assert.deepEqual(weighted.slice(0, 6), ['a', 'b', 'a', 'a', 'b', 'a'])
    assert.deepEqual(assignShards(100, [{name: 'x', weight: 3}, {name: 'y', weight: 5}]), assignShards(100, [{name: 'x', weight: 3}, {name: 'y', weight: 5}]))
  })
})
