import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createServer} from 'node:net'
import {after, before, describe, it} from 'node:test'

import {Redis} from 'ioredis'

import {encodeId, IdGenerator} from '../../src/shards/ids.js'
import {
  idAt,
  isLayout,
  layoutFor,
  locate,
  MAX_DISPLACEMENT,
  MAX_SEGMENT_BYTES,
  segmentBytes,
  SEGMENT_TAIL,
  TARGET_LOAD,
} from '../../src/shards/photo-map-layout.js'
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

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1])
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as {port: number}).port
      srv.close(() => resolve(port))
    })
  })
}

async function keysOf(map: PhotoOwnerMap, generation: number): Promise<string[]> {
  const out: string[] = []
  for await (const keys of map.scanKeys(generation)) out.push(...keys)
  return out.sort()
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
    const missing = ids[0]! + 1n // same ms and shard, never written
    const got = await map.getMany([ids[10]!, missing, ids[0]!, ids[499]!, 0n, (1n << 64n) - 1n])
    assert.deepEqual(got, [1009n, null, 42n, 1498n, null, null])
    assert.equal(await map.get(missing), null)
    assert.deepEqual(await map.getMany([]), [])
    // an overwrite keeps one mapping
    await map.set(ids[7]!, 77n)
    assert.equal(await map.get(ids[7]!), 77n)
    assert.equal(await map.count(), 500)
    assert.equal(await map.delete(ids[5]!), true)
    assert.equal(await map.delete(ids[5]!), false)
    assert.equal(await map.get(ids[5]!), null)
    assert.equal(await map.get(ids[6]!), 1005n)
    assert.equal(await map.count(), 499)
    // the same id twice in one lookup, and in one batch (the last write wins)
    await map.setMany([[ids[8]!, 1n], [ids[8]!, 2n]])
    assert.deepEqual(await map.getMany([ids[8]!, ids[8]!]), [2n, 2n])
  })

  it('keeps owners that do not fit 32 bits exactly (in the stash) and drops the stash entry when they shrink', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'wide', capacity: 1000})
    const layout = await map.layout()
    const ids = lowRateIds(4)
    const owners = [9_007_199_254_740_993n, (1n << 64n) - 1n, 4_294_967_295n, 4_294_967_294n]
    await map.setMany(ids.map((id, i) => [id, owners[i]!]))
    assert.deepEqual(await map.getMany(ids), owners)
    assert.equal(await redis.hlen(map.stashKey(layout)), 3, 'the three owners ≥ 2^32 − 1 are in the stash')
    await map.set(ids[0]!, 5n)
    assert.equal(await map.get(ids[0]!), 5n)
    assert.equal(await redis.hlen(map.stashKey(layout)), 2)
    assert.equal(await map.delete(ids[1]!), true)
    assert.equal(await map.get(ids[1]!), null)
    assert.equal(await redis.hlen(map.stashKey(layout)), 1)
    assert.equal(await map.count(), 3)
    const stats = await map.stats()
    assert.deepEqual([stats.mappings, stats.inTable, stats.stashed], [3, 3, 1])
  })

  it('rejects bad input before writing anything', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'bad', capacity: 1000})
    await assert.rejects(map.set(1n, -1n), RangeError)
    await assert.rejects(map.set(-5n, 1n), RangeError)
    await assert.rejects(map.setMany([[1n, 1n], [1n << 64n, 2n]]), RangeError)
    await assert.rejects(map.getMany([1n, -1n]), RangeError)
    await assert.rejects(map.get(1n << 64n), RangeError)
    await assert.rejects(map.delete(-1n), RangeError)
    await assert.rejects(map.getMany([1 as unknown as bigint]), RangeError)
    assert.equal(await map.get(1n), null, 'the good pair of a rejected batch is not written either')
    assert.deepEqual(await keysOf(map, 1), [], 'no table key was created')
    assert.throws(() => new PhotoOwnerMap(redis, {capacity: 0}), RangeError)
    await redis.set('broken:layout', '{"buckets": "many"}')
    await assert.rejects(new PhotoOwnerMap(redis, {prefix: 'broken'}).get(1n), /does not hold a photo map layout/)
  })

  it('refuses a layout of the old hash-bucket map and says how to rebuild', async () => {
    await redis.set('old:layout', JSON.stringify({capacity: 1000, buckets: 15, fieldBytes: 8, generation: 4}))
    const map = new PhotoOwnerMap(redis, {prefix: 'old'})
    await assert.rejects(map.get(1n), /old hash-bucket photo map; rebuild the map with `feedops shards reindex-photos`/)
    assert.equal(await map.storedLayout(), null)
    assert.equal(await map.legacyGeneration(), 4)
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
    assert.deepEqual(await keysOf(a, 1), ['lay:1:count', 'lay:1:t0'])
    assert.equal(await a.dropGeneration(1), 2)
    assert.deepEqual(await keysOf(a, 1), [])
    assert.equal(await a.get(123n << 23n), 8n)
  })

  for (const [name, make] of [
    ['one photo a minute', lowRateIds],
    ['bursts of 1000 photos per ms', burstIds],
  ] as const) {
    it(`fills the table to its target load with ${name}: every lookup exact, displacements short`, async () => {
      const n = 40_000
      const prefix = `fill${name.length}`
      const map = new PhotoOwnerMap(redis, {prefix, capacity: n})
      const layout = await map.layout()
      const ids = make(n)
      assert.equal(new Set(ids).size, n)
      const m0 = await usedMemory(redis)
      for (let i = 0; i < n; i += 5000) await map.setMany(ids.slice(i, i + 5000).map((id, j) => [id, BigInt(i + j + 1)]))
      const m1 = await usedMemory(redis)
      // one string of exactly segmentBytes (jemalloc's next size class is at most 25 % more) and a counter
      assert.equal(await redis.strlen(map.segmentKey(layout, 0)), segmentBytes(layout))
      assert.ok(m1 - m0 < segmentBytes(layout) * 1.25 + 4096, `${m1 - m0} bytes for a ${segmentBytes(layout)}-byte table`)

      const got = await map.getMany(ids)
      assert.equal(got.filter((g, i) => g !== BigInt(i + 1)).length, 0, 'every owner comes back')
      const stats = await map.stats()
      assert.equal(stats.mappings, n)
      assert.equal(stats.inTable, n)
      assert.equal(stats.stashed, 0)
      assert.equal(stats.segmentKeys, 1)
      assert.ok(Math.abs(stats.load - TARGET_LOAD) < 0.001, `load ${stats.load}`)
      // Robin Hood at load 0.75: mean displacement ~1.5; a hash that clustered the ids would show here
      assert.ok(stats.meanDisplacement < 2, `mean displacement ${stats.meanDisplacement}`)
      assert.ok(stats.maxDisplacement < 25, `max displacement ${stats.maxDisplacement}`)
      assert.equal(stats.displacementHistogram.reduce((a, b) => a + b, 0), n)
      assert.deepEqual(stats.warnings, [])
      assert.equal(await map.count(), n)
      // every slot decodes back to the id that was written, with its owner
      let seen = 0
      for await (const [id, owner] of map.entries()) {
        assert.equal(ids[Number(owner) - 1], id)
        seen++
      }
      assert.equal(seen, n)
    })
  }

  it('follows a probe past the first window (a one-slot window makes every displaced mapping do so)', async () => {
    const wide = new PhotoOwnerMap(redis, {prefix: 'win', capacity: 5000})
    const narrow = new PhotoOwnerMap(redis, {prefix: 'win', capacity: 5000, lookupWindow: 1})
    const ids = lowRateIds(5000)
    await wide.setMany(ids.map((id, i) => [id, BigInt(i)]))
    const stats = await wide.stats()
    assert.ok(stats.maxDisplacement >= 4, 'some mappings sit several slots past home')
    const unknown = ids.map((id) => id + 1n)
    assert.deepEqual(await narrow.getMany(ids), ids.map((_, i) => BigInt(i)))
    assert.deepEqual(await narrow.getMany(unknown), unknown.map(() => null))
    assert.deepEqual(await wide.getMany(unknown), unknown.map(() => null))
    assert.throws(() => new PhotoOwnerMap(redis, {lookupWindow: 0}), RangeError)
  })

  it('keeps every other mapping findable through deletes (backward shift) and re-inserts', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'del', capacity: 4000})
    const ids = burstIds(4000)
    await map.setMany(ids.map((id, i) => [id, BigInt(i)]))
    const gone = new Set<number>()
    for (let i = 0; i < ids.length; i += 3) {
      assert.equal(await map.delete(ids[i]!), true)
      gone.add(i)
    }
    const got = await map.getMany(ids)
    assert.equal(got.filter((g, i) => g !== (gone.has(i) ? null : BigInt(i))).length, 0)
    assert.equal(await map.count(), ids.length - gone.size)
    const stats = await map.stats()
    assert.equal(stats.inTable, ids.length - gone.size, 'the slots agree with the counter')
    await map.setMany([...gone].map((i) => [ids[i]!, BigInt(i)]))
    assert.deepEqual(await map.getMany(ids), ids.map((_, i) => BigInt(i)))
  })

  it('takes mappings past its capacity (the overflow goes to the stash), warns, and a rebuild makes it compact again', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'full', capacity: 1000})
    const layout = await map.layout()
    const ids = lowRateIds(3000)
    await map.setMany(ids.map((id, i) => [id, BigInt(i)]))
    assert.deepEqual(await map.getMany(ids), ids.map((_, i) => BigInt(i)))
    const stats = await map.stats()
    assert.equal(stats.mappings, 3000)
    // all but a few slots (the last of the tail can only be reached from a home past the segment)
    assert.ok(stats.inTable > 0.99 * (layout.buckets + SEGMENT_TAIL), `${stats.inTable} slots taken`)
    assert.equal(stats.stashed, 3000 - stats.inTable)
    assert.ok(stats.maxDisplacement <= MAX_DISPLACEMENT)
    assert.match(stats.warnings.join(' '), /more than its capacity 1000; rebuild it larger with `feedops shards reindex-photos --capacity/)
    assert.match(stats.warnings.join(' '), /sit in the stash hash/)
    assert.equal(await map.count(), 3000)
    // a stashed mapping and a table one can be deleted; unknown ids stay unknown
    const stashIds = new Set<bigint>()
    for await (const [id, owner] of map.stashEntries()) {
      assert.equal(owner, BigInt(ids.indexOf(id)))
      stashIds.add(id)
    }
    assert.equal(stashIds.size, stats.stashed)
    const inStash = ids.findIndex((id) => stashIds.has(id))
    const inTable = ids.findIndex((id) => !stashIds.has(id))
    assert.ok(inStash >= 0 && inTable >= 0)
    assert.equal(await map.delete(ids[inStash]!), true)
    assert.equal(await map.delete(ids[inTable]!), true)
    assert.deepEqual(await map.getMany([ids[inStash]!, ids[inTable]!, ids[0]! + 1n]), [null, null, null])
    // the rebuild: a new generation sized for the data, then the switch
    const bigger = layoutFor(6000, 2)
    const all: [bigint, bigint][] = []
    for await (const pair of map.entries()) all.push(pair)
    assert.equal(all.length, 2998)
    await map.setMany(all, bigger)
    await map.activate(bigger)
    assert.ok((await map.dropGeneration(1)) >= 3)
    const after = await map.stats()
    assert.equal(after.stashed, 0)
    assert.equal(after.mappings, 2998)
    assert.deepEqual(after.warnings, [])
    assert.equal(await map.get(ids[2]!), 2n)
  })

  it('loads its scripts again after SCRIPT FLUSH', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'flush', capacity: 1000})
    await map.set(5n, 6n)
    await redis.script('FLUSH')
    assert.equal(await map.get(5n), 6n)
    await redis.script('FLUSH')
    await map.setMany([[7n, 8n]])
    await redis.script('FLUSH')
    assert.equal(await map.delete(5n), true)
    assert.deepEqual(await map.getMany([5n, 7n]), [null, 8n])
  })

  it('warns when the server would evict a whole segment under memory pressure', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'lim', capacity: 1000})
    const before = (await redis.config('GET', 'maxmemory-policy')) as string[]
    assert.deepEqual((await map.checkLimits()).warnings, [])
    await redis.config('SET', 'maxmemory-policy', 'allkeys-lru')
    try {
      assert.match((await map.checkLimits()).warnings.join(' '), /maxmemory-policy allkeys-lru.*whole segment/)
    } finally {
      await redis.config('SET', 'maxmemory-policy', before[1]!)
    }
  })

  it('fails the call, not silently, when Redis is down', async () => {
    // its own redis-server, stopped by pid halfway; the client is set up like connectRedis()'s
    const port = await freePort()
    const server = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], {stdio: 'ignore'})
    const client = new Redis({host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 2, retryStrategy: () => null})
    client.on('error', () => undefined)
    try {
      for (let i = 0; ; i++) {
        try {
          await client.connect()
          break
        } catch (err) {
          if (i > 50) throw err
          await new Promise((r) => setTimeout(r, 100))
        }
      }
      const map = new PhotoOwnerMap(client, {capacity: 1000})
      await map.set(1n, 2n)
      assert.equal(await map.get(1n), 2n)
      const exited = new Promise((r) => server.once('exit', r))
      process.kill(server.pid!, 'SIGTERM')
      await exited
      await assert.rejects(map.getMany([1n, 2n]), /Connection is closed|ECONNREFUSED|ECONNRESET/)
      await assert.rejects(map.set(3n, 4n), /Connection is closed|ECONNREFUSED|ECONNRESET/)
      await assert.rejects(map.delete(1n), /Connection is closed|ECONNREFUSED|ECONNRESET/)
    } finally {
      client.disconnect()
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM')
    }
  })
})

describe('photo map layout (pure)', () => {
  it('locate and idAt are inverse for ids of every shape and table sizes', () => {
    for (const capacity of [1, 1000, 10_000_000, 2_000_000_000]) {
      const layout = layoutFor(capacity)
      assert.ok(isLayout(layout))
      const q = Buffer.alloc(layout.dqBytes)
      for (const id of [0n, 1n, (1n << 64n) - 1n, ...lowRateIds(200), ...burstIds(200)]) {
        const home = locate(id, layout, q, 0)
        assert.ok(home >= 0 && home < layout.buckets)
        assert.equal(q[0]! >>> 3, 0, 'the displacement bits are left for the slot')
        assert.equal(idAt(home, Buffer.from(q), layout), id)
      }
    }
  })

  it('sizes 10 M mappings as 4 full 32 MiB segments of 10-byte slots (13.4 bytes a mapping)', () => {
    const l = layoutFor(10_000_000)
    assert.equal(l.slotBytes, 10)
    assert.equal(l.dqBytes, 6)
    assert.equal(l.segments, 4)
    assert.ok(segmentBytes(l) <= MAX_SEGMENT_BYTES && segmentBytes(l) + 16 <= 32 * 2 ** 20)
    assert.ok(l.buckets * TARGET_LOAD >= 10_000_000)
    assert.ok((4 * 32 * 2 ** 20) / 10_000_000 < 13.5)
    // small maps get exactly the slots they need, in one segment; huge ones shorter slots
    assert.deepEqual(layoutFor(1000), {version: 2, capacity: 1000, buckets: 1334, segments: 1, segmentSlots: 1334, slotBytes: 12, dqBytes: 8, generation: 1})
    assert.equal(layoutFor(2_000_000_000).slotBytes, 9)
    assert.throws(() => layoutFor(1.5), RangeError)
    assert.throws(() => layoutFor(4e9), /too large/)
    assert.equal(isLayout({...l, dqBytes: 5, slotBytes: 9}), false, 'a quotient that does not fit is refused')
  })
})
