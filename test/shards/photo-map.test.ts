import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {Redis} from 'ioredis'

import {encodeId, IdGenerator} from '../../src/shards/ids.js'
import {entryAt, fieldBytesAt, levelOf, LISTPACK_MAX_ENTRIES, locate, permuteMany, spareBitsAt, SPLIT_FILL, unpermute, valueOf} from '../../src/shards/photo-map/layout.js'
import {PhotoOwnerMap} from '../../src/shards/photo-map/map.js'
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
  const state = await map.state()
  const lens: number[] = []
  const encs = new Set<string>()
  for await (const keys of map.scanBuckets(state.generation)) {
    for (const k of keys) {
      if (k.endsWith(':state')) continue
      lens.push(await redis.hlen(k))
      encs.add(String(await redis.object('ENCODING', k)))
    }
  }
  return {lens, encodings: encs}
}

/**
 * Reads every key of the active generation and checks the linear-hashing invariants: each field sits in
 * the bucket (and with the width) that locate() gives its id under the saved state, buckets are below
 * 2^L + S, a short field is held once per bucket, in its overflow only when the bucket is full, a wide
 * field only in the overflow and only while another id holds its short field, and the state counts what
 * the keys hold (less `uncounted`, mappings a test put in the state without writing them). Answers the
 * mappings found.
 */
async function checkInvariants(redis: Redis, map: PhotoOwnerMap, uncounted = 0, seen?: {wide: number; overflowShort: number}): Promise<Map<bigint, bigint>> {
  const state = await map.state()
  const found = new Map<bigint, bigint>()
  const lens = new Map<string, number>()
  const short = new Map<string, bigint>() // bucket + short field (hex) → the id holding it
  const wide: [string, bigint][] = []
  for await (const all of map.scanBuckets(state.generation)) {
    const keys = all.filter((k) => !k.endsWith(':state'))
    const pipe = redis.pipeline()
    for (const key of keys) pipe.object('ENCODING', key).callBuffer('HGETALL', key)
    const replies = (await pipe.exec())!.map(([err, v]) => {
      assert.ifError(err)
      return v
    })
    for (const [j, key] of keys.entries()) {
      const bucket = Number(key.slice(`${map.prefix}:${state.generation}:`.length).replace(/\+$/, ''))
      assert.ok(Number.isInteger(bucket) && bucket < state.buckets, `key ${key} is past ${state.buckets} buckets`)
      assert.equal(String(replies[2 * j]), 'listpack', key)
      const flat = replies[2 * j + 1] as Buffer[]
      lens.set(key, flat.length / 2)
      for (let i = 0; i < flat.length; i += 2) {
        const {id, owner} = entryAt(bucket, flat[i]!, flat[i + 1]!, state)
        const at = locate(id, state)
        assert.equal(at.bucket, bucket, `${id} is in bucket ${bucket}, belongs in ${at.bucket}`)
        assert.ok(!found.has(id), `${id} is stored twice`)
        found.set(id, owner)
        const name = `${bucket}/${at.field.toString('hex')}`
        if (at.field.equals(flat[i]!)) {
          assert.equal(flat[i + 1]!.toString(), valueOf(owner, at))
          assert.ok(!short.has(name), `short field ${name} held twice`)
          short.set(name, id)
          if (key.endsWith('+')) {
            assert.equal(lens.get(key.slice(0, -1)) ?? (await redis.hlen(key.slice(0, -1))), LISTPACK_MAX_ENTRIES, `${key} holds a short field beside a bucket that is not full`)
            if (seen && at.spareBits > 0) seen.overflowShort++
          }
        } else {
          assert.ok(at.spareBits > 0 && at.wide.equals(flat[i]!) && key.endsWith('+'), `${id}: field ${flat[i]!.toString('hex')} in ${key}`)
          wide.push([name, id])
          if (seen) seen.wide++
        }
      }
    }
  }
  for (const [name, id] of wide) assert.ok(short.has(name) && short.get(name) !== id, `wide field of ${id} while no other id holds ${name}`)
  assert.equal(found.size, state.mappings - uncounted, 'the state counts what the buckets hold')
  return found
}

/** Random distinct 64-bit ids. */
function randomIds(n: number): bigint[] {
  const out = new Set<bigint>()
  while (out.size < n) out.add(BigInt.asUintN(64, (BigInt(Math.floor(Math.random() * 2 ** 32)) << 32n) | BigInt(Math.floor(Math.random() * 2 ** 32))))
  return [...out]
}

/** A small seeded PRNG (mulberry32), so a failing run repeats. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/**
 * Ids in groups whose permuted x agree everywhere but in bits `from` .. `from` + 2: at a level whose spare
 * bits are among those, the ids of a group that share a bucket share its short field. Each group's low
 * `from` bits are one of `lows`; 1 to 8 members a group.
 */
function collidingIds(rand: () => number, groups: number, from: number, lows: readonly number[]): bigint[] {
  const ids: bigint[] = []
  const r64 = () => (BigInt(Math.floor(rand() * 2 ** 32)) << 32n) | BigInt(Math.floor(rand() * 2 ** 32))
  for (let g = 0; g < groups; g++) {
    const low = BigInt(lows[g % lows.length]!) & ((1n << BigInt(from)) - 1n)
    const x = (r64() & ~((1n << BigInt(from + 3)) - 1n)) | low
    for (let k = 0n; k < 8n; k++) if (k === 0n || rand() < 0.5) ids.push(unpermute(x | (k << BigInt(from))))
  }
  return ids
}

/**
 * Owners of every size: listpack's small integers, past 2^21 (no longer 24-bit with 2 spare bits), of 15
 * digits (past the 14 that Lua prints a number with), about 2^53 (past Lua's exact doubles), up to 2^64 − 1.
 */
function randomOwner(rand: () => number): bigint {
  const r = rand()
  if (r < 0.5) return BigInt(Math.floor(rand() * 2 ** 21))
  if (r < 0.6) return BigInt(2 ** 21 + Math.floor(rand() * 2 ** 40))
  if (r < 0.75) return BigInt(1e14 + Math.floor(rand() * 9e14))
  if (r < 0.87) return (1n << 53n) + BigInt(Math.floor(rand() * 1000)) - 500n
  return (1n << 64n) - 1n - BigInt(Math.floor(rand() * 2 ** 32))
}

/**
 * Random rounds of writes (new and overwrites), deletes and a lookup of every id (written or not) against
 * a JS model, with the invariants checked after each round. `boost` is called after the first round and
 * answers mappings it put in the state's count (see below): they make the map split.
 */
async function modelRounds(redis: Redis, map: PhotoOwnerMap, ids: bigint[], rand: () => number, rounds: number, boost: () => Promise<number>): Promise<{wide: number; overflowShort: number}> {
  const model = new Map<bigint, bigint>()
  const seen = {wide: 0, overflowShort: 0}
  let uncounted = 0
  for (let round = 0; round < rounds; round++) {
    const pairs: [bigint, bigint][] = []
    for (const id of ids) if (rand() < (round === 0 ? 0.9 : 0.3)) pairs.push([id, randomOwner(rand)])
    const fresh = pairs.filter(([id]) => !model.has(id)).length
    assert.equal(await map.setMany(pairs), fresh, `round ${round}: new mappings`)
    for (const [id, owner] of pairs) model.set(id, owner)
    const known = [...model.keys()]
    for (let k = 0; k < 12 && known.length > 0; k++) {
      const id = known[Math.floor(rand() * known.length)]!
      assert.equal(await map.delete(id), model.delete(id), `round ${round}: delete ${id}`)
    }
    assert.deepEqual(await map.getMany(ids), ids.map((id) => model.get(id) ?? null), `round ${round}: lookups`)
    const found = await checkInvariants(redis, map, uncounted, seen)
    assert.equal(found.size, model.size)
    for (const [id, owner] of model) assert.equal(found.get(id), owner)
    if (round === 0) uncounted += await boost()
  }
  return seen
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
    const map = new PhotoOwnerMap(redis, {prefix: 'rt'})
    assert.deepEqual(await map.getMany([1n, 2n]), [null, null], 'an empty Redis answers misses')
    const ids = lowRateIds(500)
    await map.set(ids[0]!, 42n)
    assert.equal(await map.get(ids[0]!), 42n)
    assert.equal(await map.setMany(ids.slice(1).map((id, i) => [id, BigInt(1000 + i)])), 499)
    const missing = ids[0]! + 1n // same ms, shard and bucket layout, never written
    const got = await map.getMany([ids[10]!, missing, ids[0]!, ids[499]!, 0n, (1n << 64n) - 1n])
    assert.deepEqual(got, [1009n, null, 42n, 1498n, null, null])
    assert.equal(await map.get(missing), null)
    assert.deepEqual(await map.getMany([]), [])
    // a user id beyond 32 bits and an overwrite (not a new mapping)
    assert.equal(await map.setMany([[ids[5]!, 9_007_199_254_740_993n]]), 0)
    assert.equal(await map.get(ids[5]!), 9_007_199_254_740_993n)
    assert.equal(await map.delete(ids[5]!), true)
    assert.equal(await map.delete(ids[5]!), false)
    assert.equal(await map.get(ids[5]!), null)
    assert.equal(await map.get(ids[6]!), 1005n)
    assert.equal((await map.state()).mappings, 499)
    await checkInvariants(redis, map)
  })

  it('rejects bad input before writing anything', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'bad'})
    await assert.rejects(map.set(1n, -1n), RangeError)
    await assert.rejects(map.set(-5n, 1n), RangeError)
    await assert.rejects(map.setMany([[1n, 1n], [1n << 64n, 2n]]), RangeError)
    assert.equal(await map.get(1n), null, 'the good pair of a rejected batch is not written either')
    assert.equal(await redis.exists('bad:gen'), 0)
    await redis.set('broken:gen', 'many')
    await assert.rejects(new PhotoOwnerMap(redis, {prefix: 'broken'}).state(), /does not hold a generation number/)
  })

  it('keeps the active generation in Redis, so every instance follows a rebuild at once', async () => {
    const a = new PhotoOwnerMap(redis, {prefix: 'lay'})
    await a.set(123n << 23n, 7n)
    const b = new PhotoOwnerMap(redis, {prefix: 'lay'})
    assert.equal(await b.activeGeneration(), 1)
    assert.equal(await b.get(123n << 23n), 7n)
    // a rebuild fills generation 2 and activates it; a's next call reads it
    await b.setMany([[123n << 23n, 8n]], 2)
    assert.equal(await a.get(123n << 23n), 7n)
    await b.activate(2)
    assert.equal(await a.get(123n << 23n), 8n)
    assert.equal(await a.dropGeneration(1), 2, 'one bucket and the state')
  })

  for (const [name, make] of [
    ['one photo a minute', lowRateIds],
    ['bursts of 1000 photos per ms', burstIds],
  ] as const) {
    it(`keeps every bucket listpack and evenly filled with ${name}`, async () => {
      const n = 20_000
      const prefix = `fill${name.length}`
      const map = new PhotoOwnerMap(redis, {prefix})
      const ids = make(n)
      assert.equal(new Set(ids).size, n)
      for (let i = 0; i < n; i += 5000) await map.setMany(ids.slice(i, i + 5000).map((id, j) => [id, BigInt(i + j + 1)]))
      const state = await map.state()
      const {lens, encodings: encs} = await encodings(redis, map)
      assert.deepEqual([...encs], ['listpack'])
      assert.equal(lens.reduce((a, b) => a + b, 0), n)
      assert.equal(state.mappings, n)
      assert.equal(state.buckets, Math.ceil(n / SPLIT_FILL), 'the map grew to one bucket per SPLIT_FILL mappings')
      assert.equal(lens.length, state.buckets, 'every bucket is used and none overflows')
      // Split buckets hold half as much as the ones not split yet this level: each kind is Poisson.
      const unsplit = 2 ** state.level - state.split
      const big = n / (2 ** state.level) // mean of a bucket not split this level
      const max = Math.max(...lens)
      assert.ok(max < big + 5 * Math.sqrt(big) && max <= LISTPACK_MAX_ENTRIES, `max fill ${max}`)
      const fullSize = (await Promise.all(Array.from({length: unsplit}, (_, i) => redis.hlen(map.bucketKey(state.generation, state.split + i)))))
      const meanBig = fullSize.reduce((a, b) => a + b, 0) / unsplit
      assert.ok(Math.abs(meanBig - big) < 0.1 * big, `buckets not split this level hold ${meanBig}, expected ${big}`)
      // the stats agree, and no warnings on a default Redis
      const stats = await map.stats()
      assert.equal(stats.mappings, n)
      assert.equal(stats.notListpack, 0)
      assert.equal(stats.maxFill, max)
      assert.deepEqual(stats.warnings, [])
      // ids come back from the fields
      const sample = await map.bucketEntries(0)
      assert.equal(sample.length, await redis.hlen(map.bucketKey(state.generation, 0)))
      assert.ok(sample.length > 0)
      for (const [id, user] of sample) assert.equal(ids[Number(user) - 1], id)
      const got = await map.getMany(ids)
      assert.deepEqual(got, ids.map((_, i) => BigInt(i + 1)))
      await checkInvariants(redis, map)
    })
  }

  it('grows by splits alone, across levels and field widths, with every lookup right along the way', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'grow'})
    const ids = randomIds(60_000)
    const levels = new Set<number>()
    let narrowed = false
    let written = 0
    // batches of changing size, each followed by a lookup of everything written so far; 2,563 stops at
    // level 5 with buckets split, whose fields are a byte narrower than the unsplit ones' (8 → 7), and
    // 7,000 at level 6, where values carry 2 spare bits and the split buckets' 1
    for (const size of [1, 2, 60, 500, 2000, 4437, 20_000, 33_000]) {
      const batch = ids.slice(written, written + size)
      assert.equal(await map.setMany(batch.map((id, i) => [id, BigInt(written + i)])), batch.length)
      written += batch.length
      const state = await map.state()
      levels.add(state.level)
      if (state.split > 0 && fieldBytesAt(state.level + 1) < fieldBytesAt(state.level)) narrowed = true
      assert.equal(state.mappings, written)
      assert.ok(state.buckets >= written / SPLIT_FILL && state.buckets <= written / SPLIT_FILL + 1, `${state.buckets} buckets for ${written}`)
      assert.deepEqual(await map.getMany(ids.slice(0, written)), ids.slice(0, written).map((_, i) => BigInt(i)))
    }
    assert.equal(written, ids.length)
    const state = await map.state()
    assert.equal(state.level, Math.floor(Math.log2(Math.ceil(ids.length / SPLIT_FILL)))) // 1000 buckets at 60 a bucket: 2^9 + 488
    assert.ok(levels.size >= 6 && levels.has(6), `levels seen: ${[...levels]}`)
    assert.ok(narrowed, 'looked up while split and unsplit buckets had fields of two widths')
    assert.equal(fieldBytesAt(state.level), 7, 'fields lost a byte at level 6')
    const found = await checkInvariants(redis, map)
    assert.equal(found.size, ids.length)
    assert.equal((await map.stats()).notListpack, 0)
  })

  it('keeps a full bucket listpack by overflowing into a second hash, refilled on delete and emptied by splits', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'over'})
    // ids whose permuted low 12 bits are all 0 share bucket 0 until the map has 2^12 buckets
    const same: bigint[] = []
    for (let id = 1n; same.length < 300; id++) if (locate(id, {level: 12, split: 0}).bucket === 0) same.push(id)
    await map.setMany(same.map((id, i) => [id, BigInt(i)]))
    const state = await map.state()
    assert.equal(state.buckets, Math.ceil(300 / SPLIT_FILL))
    assert.equal(await redis.hlen('over:1:0'), LISTPACK_MAX_ENTRIES)
    assert.equal(await redis.hlen('over:1:0+'), 300 - LISTPACK_MAX_ENTRIES)
    assert.equal(String(await redis.object('ENCODING', 'over:1:0+')), 'listpack')
    assert.deepEqual(await map.getMany(same), same.map((_, i) => BigInt(i)))
    await map.set(same[299]!, 7n) // an update of an overflowed field stays there
    assert.equal(await redis.hlen('over:1:0+'), 300 - LISTPACK_MAX_ENTRIES)
    assert.equal(await map.get(same[299]!), 7n)
    assert.equal(await map.delete(same[0]!), true)
    assert.equal(await redis.hlen('over:1:0'), LISTPACK_MAX_ENTRIES, 'refilled from the overflow')
    assert.equal(await redis.hlen('over:1:0+'), 300 - LISTPACK_MAX_ENTRIES - 1)
    assert.equal(await map.get(same[0]!), null)
    await checkInvariants(redis, map)
    // more ids, so bucket 0 is split at several levels: its overflowed entries are rewritten, none lost
    await map.setMany(randomIds(4000).map((id) => [id, 1n]))
    const found = await checkInvariants(redis, map)
    for (const id of same.slice(1)) assert.ok(found.has(id))
  })

  it('matches a model from empty through levels 0 to 8, with random ids and ids crafted to collide at levels 6 and 7', async () => {
    const rand = prng(7)
    const map = new PhotoOwnerMap(redis, {prefix: 'model'})
    const ids = [...new Set([...randomIds(7000), ...collidingIds(rand, 700, 6, [0, 1, 2, 63, 64, 65, 127])])]
    const seen = await modelRounds(redis, map, ids, rand, 6, async () => 0)
    const state = await map.state()
    assert.ok(state.level >= 7, `level ${state.level}`)
    assert.ok(seen.wide > 0 && seen.overflowShort > 0, `collisions stored wide ${seen.wide} times, short fields overflowed ${seen.overflowShort} times`)
  })

  // Seeded near the end of level L (S = 2^L − 2, the mapping count raised after the first round so that
  // every pair written splits one more bucket), so the crafted ids' buckets 2^L − 2 and 2^L − 1 split
  // into level L + 1 and then its buckets 0 and 1 into L + 2, with the buckets full of short fields that
  // collide: 13 → 14 → 15 and 21 → 22 → 23 start spare bits, 15 → 16 → 17 and 23 → 24 → 25 end them.
  for (const level of [13, 15, 21, 23]) {
    it(`matches a model across the splits from level ${level} to ${level + 2}, ids crafted to collide, owners of every size`, async () => {
      const rand = prng(level)
      const prefix = `model${level}`
      const map = new PhotoOwnerMap(redis, {prefix})
      await redis.set(`${prefix}:gen`, '1')
      await redis.hset(`${prefix}:1:state`, 'l', level, 's', 2 ** level - 2, 'n', 0)
      const m = 2 ** level
      const ids = [...new Set([
        ...collidingIds(rand, 50, level, [m - 2]), // over 128 short fields in one bucket: it overflows
        ...collidingIds(rand, 14, level, [m - 1]),
        ...collidingIds(rand, 30, level, [0, 1]),
      ])]
      const boost = SPLIT_FILL * 2 ** (level + 2)
      const seen = await modelRounds(redis, map, ids, rand, 5, async () => {
        await redis.hincrby(`${prefix}:1:state`, 'n', boost)
        return boost
      })
      assert.ok(seen.wide > 0, 'collisions were stored under wide fields')
      if (spareBitsAt(level) > 0) assert.ok(seen.overflowShort > 0, 'a full bucket of short fields overflowed')
      const state = await map.state()
      assert.equal(state.level, level + 1)
      assert.ok(state.split > 2, `split ${state.split}: buckets 0 and 1 of level ${level + 1} were split`)
    })
  }

  it('stays exact with concurrent writers splitting and readers reading at once', async () => {
    const writers = await Promise.all(Array.from({length: 4}, async () => {
      const c = new Redis(lab.layout.redis.url)
      return c
    }))
    try {
      const ids = randomIds(16_000)
      const acked: bigint[] = []
      const reader = new PhotoOwnerMap(redis, {prefix: 'conc'})
      let reading = true
      let reads = 0
      const readLoop = (async () => {
        while (reading) {
          const known = acked.slice(-2000)
          if (known.length === 0) {
            await new Promise((r) => setTimeout(r, 1))
            continue
          }
          const got = await reader.getMany(known)
          for (let i = 0; i < known.length; i++) assert.equal(got[i], known[i]! & 0xffffn, `acknowledged ${known[i]} missing during splits`)
          reads++
        }
      })()
      await Promise.all(writers.map(async (c, w) => {
        const map = new PhotoOwnerMap(c, {prefix: 'conc'})
        const mine = ids.filter((_, i) => i % 4 === w)
        for (let i = 0; i < mine.length; i += 40) {
          const batch = mine.slice(i, i + 40)
          await map.setMany(batch.map((id) => [id, id & 0xffffn]))
          acked.push(...batch)
        }
      }))
      reading = false
      await readLoop
      assert.ok(reads > 3, `${reads} reads`)
      const found = await checkInvariants(redis, reader)
      assert.equal(found.size, ids.length)
      for (const id of ids) assert.equal(found.get(id), id & 0xffffn)
    } finally {
      for (const c of writers) c.disconnect()
    }
  })

  it('never leaves a bucket half split: a write cut off by its client, or stopped by a key in the way', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'cut'})
    const ids = randomIds(12_000)
    const first = new Set(ids.slice(0, 1000))
    await map.setMany(ids.slice(0, 1000).map((id) => [id, 1n]))
    // a client that drops its connection while its calls are queued and running
    const c = new Redis(lab.layout.redis.url, {maxRetriesPerRequest: 0, retryStrategy: () => null})
    c.on('error', () => undefined)
    const writing = new PhotoOwnerMap(c, {prefix: 'cut'}).setMany(ids.slice(1000, 8000).map((id) => [id, 2n]))
    await new Promise((r) => setTimeout(r, 5))
    c.disconnect()
    await writing.catch(() => undefined)
    await new Promise((r) => setTimeout(r, 200)) // calls Redis had already read still run to the end
    const after = await checkInvariants(redis, map)
    assert.ok(after.size >= 1000)
    for (const [id, user] of after) assert.equal(user, first.has(id) ? 1n : 2n)

    // a string key where the next split must write: the call fails, nothing is half done
    const state = await map.state()
    const dst = map.bucketKey(state.generation, state.split + 2 ** state.level)
    await redis.set(dst, 'in the way')
    const rest = ids.filter((id) => !after.has(id))
    await assert.rejects(map.setMany(rest.map((id) => [id, 3n])), /photo map write stopped after \d+ new mappings: .*WRONGTYPE/)
    await redis.del(dst)
    const stopped = await checkInvariants(redis, map)
    assert.equal((await map.state()).split, state.split, 'the split did not happen')
    assert.ok(stopped.size > after.size)
    await map.setMany(rest.map((id) => [id, 3n]))
    const all = await checkInvariants(redis, map)
    assert.equal(all.size, ids.length)
  })

  it('shows why id / 1000 is wrong for time-based ids: one mapping per bucket at a low rate', () => {
    const ids = lowRateIds(10_000)
    assert.equal(new Set(ids.map((id) => id / 1000n)).size, ids.length)
  })

  it('warns when the server would turn buckets into hashtables', async () => {
    const map = new PhotoOwnerMap(redis, {prefix: 'lim'})
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
  it('keeps the id permutation of the maps already written, batch by batch, and inverts it', () => {
    // every stored field depends on these: a change here is a new layout, to be rebuilt by reindex-photos
    const known: [bigint, string][] = [[0n, 'ca4c641cd4464fbb'], [1n, '79a20a6599723189'], [1234567890123456789n, '876f37c18a895ba7'], [2n ** 64n - 1n, '51dd062b4c5f3244']]
    assert.equal(permuteMany(known.map(([id]) => id)).toString('hex'), known.map(([, x]) => x).join(''))
    const ids = [...lowRateIds(500), ...burstIds(500), 2n ** 63n, 2n ** 32n - 1n]
    const xs = permuteMany(ids)
    ids.forEach((id, i) => assert.equal(unpermute(xs.readBigUInt64BE(8 * i)), id))
    assert.equal(new Set(ids.map((_, i) => xs.readBigUInt64BE(8 * i))).size, ids.length)
    for (const bad of [-1n, 2n ** 64n, 5 as unknown as bigint]) assert.throws(() => permuteMany([1n, bad]), /is not an unsigned 64-bit integer/)
  })

  it('locate and entryAt are inverse for ids of every shape, at every level and split, short and wide', () => {
    for (const [level, split] of [[0, 0], [3, 5], [5, 7], [6, 0], [7, 100], [8, 0], [13, 8000], [14, 1], [15, 30_000], [16, 1], [22, 5], [23, 2 ** 23 - 1], [24, 0], [30, 7], [31, 2 ** 30]] as const) {
      const state = {level, split}
      for (const id of [0n, 1n, (1n << 64n) - 1n, ...lowRateIds(200), ...burstIds(200)]) {
        const at = locate(id, state)
        const l = levelOf(at.bucket, state)
        assert.ok(at.bucket >= 0 && at.bucket < 2 ** level + split)
        assert.equal(at.field.length, fieldBytesAt(l))
        assert.equal(at.spareBits, spareBitsAt(l))
        for (const owner of [0n, 5n, (1n << 21n) - 1n, (1n << 53n) + 1n, (1n << 64n) - 1n]) {
          assert.deepEqual(entryAt(at.bucket, Buffer.from(at.field), valueOf(owner, at), state), {id, owner})
          if (at.spareBits > 0) assert.deepEqual(entryAt(at.bucket, Buffer.from(at.wide), owner.toString(), state), {id, owner})
        }
      }
    }
  })

  it('drops the last field byte where the bucket implies all but 2 of its bits, and carries those in the value', () => {
    const widths = [0, 5, 6, 7, 8, 13, 14, 15, 16, 21, 22, 23, 24, 29, 30, 31].map((l) => [l, fieldBytesAt(l), spareBitsAt(l)])
    assert.deepEqual(widths, [[0, 8, 0], [5, 8, 0], [6, 7, 2], [7, 7, 1], [8, 7, 0], [13, 7, 0], [14, 6, 2], [15, 6, 1], [16, 6, 0], [21, 6, 0], [22, 5, 2], [23, 5, 1], [24, 5, 0], [29, 5, 0], [30, 4, 2], [31, 4, 1]])
    // owners below 2^21 stay in listpack's 24-bit integers (up to 8,388,607) with 2 spare bits
    assert.equal(valueOf((1n << 21n) - 1n, {spareBits: 2, spare: 3}), '8388607')
    assert.throws(() => entryAt(0, Buffer.alloc(6), '1', {level: 8, split: 0}), RangeError)
    assert.throws(() => entryAt(0, Buffer.alloc(8), '1', {level: 8, split: 0}), RangeError, 'no wide field where no bits are spare')
  })
})
