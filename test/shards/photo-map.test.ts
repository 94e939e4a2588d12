import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {Redis} from 'ioredis'

import {encodeId, IdGenerator} from '../../src/shards/ids.js'
import {fieldBytesFor, idAt, layoutFor, locate, TARGET_FILL} from '../../src/shards/photo-map-layout.js'
import {PhotoOwnerMap} from '../../src/shards/photo-map.js'
import {startTestLab, type TestLab} from '../support/lab.js'

const EPOCH = BigInt(Date.parse('2011-01-01T00:00:00Z'))
const NOW_MS = BigInt(Date.parse('2026-01-01T00:00:00Z')) - EPOCH

/** One photo a minute for `n` minutes, on shards picked at random. */
function lowRateIds(n: number): bigint[] {
  const ids: bigint[] = []
  for (let i = 0; i < n; i++) {
    ids.push(encodeId({msSinceEpoch: NOW_MS - BigInt((n - i) * 60_000), shard: (i * 2654435761) % 8192, seq: 0}))
  }
  return ids
}

/** Bursts of 1000 photos in one ms on one shard (the generator's sequence counts 0..999). */
function burstIds(n: number): bigint[] {
  const gen = new IdGenerator(EPOCH)
  const ids: bigint[] = []
  const start = Number(EPOCH + NOW_MS)
  for (let i = 0; i < n; i++) ids.push(gen.next(Math.floor(i / 1000) % 64, start + Math.floor(i / 1000)))
  return ids
}

async function encodings(redis: Redis, map: PhotoOwnerMap): Promise<{lens: number[]; encodings: Set<string>}> {
  const layout = await map.layout()
  const lens: number[] = []
  const encs = new Set<string>()
  for await (const keys of map.scanBuckets(layout.generation)) {
    for (const k of keys) {
      lens.push(await redis.hlen(k))
      encs.add(String(await redis.object('ENCODING', k)))
    }
  }
  return {lens, encodings: encs}
}

describe('PhotoOwnerMap on a real Redis', () => {
  let lab: TestLab
  let redis: Redis

  before(async () => {
    lab = await startTestLab({redis: true})
    redis = new Redis(lab.layout.redis.url, {lazyConnect: true})
    await redis.connect()
  })
  after(async () => {
    redis?.disconnect()
    await lab?.stop()
  })

  it('round-trips set, setMany, get and getMany, with misses as null', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'rt', capacity: 10_000})
    const ids = lowRateIds(500)
    await map.set(ids[0]!, 42n)
    assert.equal(await map.get(ids[0]!), 42n)
    await map.setMany(ids.slice(1).map((id, i) => [id, BigInt(1000 + i)]))
    const missing = ids[0]! + 1n // same ms, shard and bucket layout, never written
    const got = await map.getMany([ids[10]!, missing, ids[0]!, ids[499]!, 0n, (1n << 64n) - 1n])
    assert.deepEqual(got, [1009n, null, 42n, 1498n, null, null])
    assert.equal(await map.get(missing), null)
    assert.deepEqual(await map.getMany([]), [])
    // a user id beyond 32 bits and an overwrite
    await map.set(ids[5]!, 9_007_199_254_740_993n)
    assert.equal(await map.get(ids[5]!), 9_007_199_254_740_993n)
    assert.equal(await map.delete(ids[5]!), true)
    assert.equal(await map.delete(ids[5]!), false)
    assert.equal(await map.get(ids[5]!), null)
    assert.equal(await map.get(ids[6]!), 1005n)
  })

  it('rejects bad input before writing anything', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'bad', capacity: 1000})
    await assert.rejects(map.set(1n, -1n), RangeError)
    await assert.rejects(map.set(-5n, 1n), RangeError)
    await assert.rejects(map.setMany([[1n, 1n], [1n << 64n, 2n]]), RangeError)
    assert.equal(await map.get(1n), null, 'the good pair of a rejected batch is not written either')
    assert.throws(() => new PhotoOwnerMap(redis, {capacity: 0}), RangeError)
    await redis.set('broken:layout', '{"buckets": "many"}')
    await assert.rejects(new PhotoOwnerMap(redis, {prefix: 'broken'}).get(1n), /does not hold a photo map layout/)
  })

  it('stores the layout in Redis so every instance uses the first one, and follows a new one', async () => {
    const a = new PhotoOwnerMap(redis, {prefix: 'lay', capacity: 5000, refreshMs: 50})
    await a.set(123n << 23n, 7n)
    const b = new PhotoOwnerMap(redis, {prefix: 'lay', capacity: 999_999})
    assert.deepEqual(await b.layout(), layoutFor(5000))
    assert.equal(await b.get(123n << 23n), 7n)
    // a rebuild fills generation 2 and activates it; a reads the new layout after refreshMs
    const next = layoutFor(20_000, 2)
    await b.setMany([[123n << 23n, 8n]], next)
    await b.activate(next)
    await new Promise((r) => setTimeout(r, 80))
    assert.equal(await a.get(123n << 23n), 8n)
    assert.equal(await a.dropGeneration(1), 1)
  })

  for (const [name, make] of [
    ['one photo a minute', lowRateIds],
    ['bursts of 1000 photos per ms', burstIds],
  ] as const) {
    it(`keeps every bucket listpack and evenly filled with ${name}`, async () => {
      const n = 40_000
      const prefix = `fill${name.length}`
      const map = new PhotoOwnerMap(redis, {prefix, capacity: n})
      const ids = make(n)
      assert.equal(new Set(ids).size, n)
      for (let i = 0; i < n; i += 5000) await map.setMany(ids.slice(i, i + 5000).map((id, j) => [id, BigInt(i + j + 1)]))
      const layout = await map.layout()
      const {lens, encodings: encs} = await encodings(redis, map)
      assert.deepEqual([...encs], ['listpack'])
      assert.equal(lens.reduce((a, b) => a + b, 0), n)
      assert.equal(lens.length, layout.buckets, 'every bucket is used')
      const mean = n / layout.buckets
      assert.ok(Math.abs(mean - TARGET_FILL) < 1, `mean fill ${mean}`)
      // Poisson(68): sd ≈ 8.2; with ~590 buckets nothing should be 5 sd away.
      const max = Math.max(...lens)
      const min = Math.min(...lens)
      assert.ok(max < mean + 5 * Math.sqrt(mean) && max < 128, `max fill ${max}`)
      assert.ok(min > mean - 5 * Math.sqrt(mean), `min fill ${min}`)
      const variance = lens.reduce((a, l) => a + (l - mean) ** 2, 0) / lens.length
      assert.ok(variance < 1.5 * mean, `variance ${variance} (Poisson would be ${mean})`)
      // the stats agree, and no warnings on a default Redis
      const stats = await map.stats()
      assert.equal(stats.mappings, n)
      assert.equal(stats.notListpack, 0)
      assert.equal(stats.maxFill, max)
      assert.deepEqual(stats.warnings, [])
      // ids come back from the fields
      const sample = await map.bucketEntries(0)
      assert.equal(sample.length, await redis.hlen(map.bucketKey(layout, 0)))
      assert.ok(sample.length > 0)
      for (const [id, user] of sample) assert.equal(ids[Number(user) - 1], id)
      const got = await map.getMany(ids.slice(0, 1000))
      assert.deepEqual(got, ids.slice(0, 1000).map((_, i) => BigInt(i + 1)))
    })
  }

  it('shows why id / 1000 is wrong for time-based ids: one mapping per bucket at a low rate', () => {
    const ids = lowRateIds(10_000)
    assert.equal(new Set(ids.map((id) => id / 1000n)).size, ids.length)
  })

  it('warns when the server would turn buckets into hashtables', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'lim', capacity: 1000})
    const before = await map.listpackLimits()
    assert.ok(before && before.entries >= 128)
    await redis.config('SET', 'hash-max-listpack-entries', '64')
    try {
      const {warnings} = await map.checkLimits()
      assert.match(warnings.join(' '), /hash-max-listpack-entries 64/)
      // and it is true: a full bucket is a hashtable now
      await map.setMany(lowRateIds(2000).map((id, i) => [id, BigInt(i)]))
      const stats = await map.stats()
      assert.ok(stats.notListpack > 0)
      assert.ok(stats.warnings.some((w) => /no longer listpack/.test(w)))
    } finally {
      await redis.config('SET', 'hash-max-listpack-entries', String(before.entries))
    }
  })
})

describe('photo map layout (pure)', () => {
  it('locate and idAt are inverse for ids of every shape', () => {
    for (const capacity of [1, 1000, 10_000_000, 2_000_000_000]) {
      const layout = layoutFor(capacity)
      const field = Buffer.alloc(layout.fieldBytes)
      for (const id of [0n, 1n, (1n << 64n) - 1n, ...lowRateIds(200), ...burstIds(200)]) {
        const bucket = locate(id, layout, field, 0)
        assert.ok(bucket >= 0 && bucket < layout.buckets)
        assert.equal(idAt(bucket, Buffer.from(field), layout), id)
      }
    }
  })

  it('uses 6-byte fields from 2^16 buckets and 5-byte fields from 2^24', () => {
    assert.equal(fieldBytesFor(1), 8)
    assert.equal(fieldBytesFor(2 ** 16), 6)
    assert.equal(layoutFor(10_000_000).fieldBytes, 6)
    assert.equal(fieldBytesFor(2 ** 24), 5)
    assert.throws(() => layoutFor(1.5), RangeError)
  })
})
