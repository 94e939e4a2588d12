/**
 * Photo→owner map benchmark: memory per mapping of feedops' buckets against one plain string key per
 * mapping and against Instagram's `id / 1000` bucketing, on the same ids, from Redis's own figures
 * (INFO memory used_memory before/after each fill) in one run; then the latency of 1000-owner lookups.
 *
 *   npm run build && node dist/test/bench/photo-map.js [--mappings 10000000] [--side 2000000] [--rounds 300]
 *
 * Ids come from the id generator at a realistic upload rate: `--mappings` photos over 120 days (with a
 * day/night cycle), owned by 1 M users (some post far more than others), each photo on its owner's
 * logical shard out of 8192. The bench starts its own redis-server on a free loopback port in a temp dir
 * with Redis's stock redis.conf setting hash-max-listpack-entries 128 (the built-in default is 512), and
 * stops it by pid. The plain-string and `id / 1000` sides are filled with the first `--side` ids and
 * reported per mapping (scaled; said so in the output); the mean entries per `id / 1000` bucket is
 * counted on all the ids. Writes test/bench/results/photo-map.json.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {Redis} from 'ioredis'

import {IdGenerator} from '../../src/shards/ids.js'
import {PhotoOwnerMap} from '../../src/shards/photo-map/map.js'
import {shardOfUser} from '../../src/shards/placement.js'
import {median, percentile, repoRoot, table} from './util.js'

const {values} = parseArgs({
  options: {
    mappings: {type: 'string', default: '10000000'},
    side: {type: 'string', default: '2000000'},
    rounds: {type: 'string', default: '300'},
    users: {type: 'string', default: '1000000'},
  },
})
const MAPPINGS = Number(values.mappings)
const SIDE = Math.min(Number(values.side), MAPPINGS)
const ROUNDS = Number(values.rounds)
const USERS = Number(values.users)
const LOGICAL = 8192
const DAYS = 120
const EPOCH = BigInt(Date.parse('2011-01-01T00:00:00Z'))

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`)
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

async function startRedis(dir: string): Promise<{proc: ChildProcess; port: number}> {
  const port = await freePort()
  const proc = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'no',
      '--hash-max-listpack-entries', '128', '--hash-max-listpack-value', '64', '--maxmemory', '0'],
    {stdio: ['ignore', 'ignore', 'inherit']},
  )
  for (let i = 0; i < 100; i++) {
    const probe = new Redis({host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null})
    probe.on('error', () => undefined) // not up yet: retried below
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      return {proc, port}
    } catch {
      probe.disconnect()
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  proc.kill('SIGTERM')
  throw new Error('redis-server did not start')
}

/** INFO commandstats: per command, calls and total µs since the last CONFIG RESETSTAT. */
async function commandStats(redis: Redis): Promise<Map<string, {calls: number; usec: number; usecPerCall: number}>> {
  const out = new Map<string, {calls: number; usec: number; usecPerCall: number}>()
  for (const m of (await redis.info('commandstats')).matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/g)) {
    out.set(m[1]!, {calls: Number(m[2]), usec: Number(m[3]), usecPerCall: Number(m[4])})
  }
  return out
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)?.[1])
}

/** Photo ids in upload order and their owners. */
function makeIds(n: number): {ids: BigUint64Array; owners: Uint32Array} {
  const shardOf = new Uint16Array(USERS + 1)
  for (let u = 1; u <= USERS; u++) shardOf[u] = shardOfUser(BigInt(u), LOGICAL)
  const end = Date.parse('2026-06-01T00:00:00Z')
  const start = end - DAYS * 86_400_000
  // upload times: uniform over the span, thinned by a day/night cycle, then sorted
  const times = new Float64Array(n)
  for (let i = 0; i < n; ) {
    const t = start + Math.random() * (end - start)
    const hour = ((t / 3_600_000) % 24) / 24
    if (Math.random() < 0.55 + 0.45 * Math.sin(2 * Math.PI * hour)) times[i++] = Math.floor(t)
  }
  times.sort()
  const gen = new IdGenerator(EPOCH)
  const ids = new BigUint64Array(n)
  const owners = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    const r = Math.random()
    const owner = 1 + Math.floor(USERS * r * r) // low ids post more: density ∝ 1/√id
    owners[i] = owner
    ids[i] = gen.next(shardOf[owner]!, times[i]!)
  }
  return {ids, owners}
}

/** Calls write over [0, total) in steps; big steps let setMany group several fields per bucket into one HSET. */
async function fill(label: string, total: number, step: number, write: (from: number, to: number) => Promise<void>): Promise<number> {
  const t0 = Date.now()
  for (let from = 0; from < total; from += step) {
    await write(from, Math.min(total, from + step))
    log(`${label}: ${Math.min(total, from + step).toLocaleString()} / ${total.toLocaleString()}`)
  }
  return (Date.now() - t0) / 1000
}

async function main(): Promise<void> {
  log(`generating ${MAPPINGS.toLocaleString()} ids over ${DAYS} days, ${USERS.toLocaleString()} users, ${LOGICAL} shards`)
  const {ids, owners} = makeIds(MAPPINGS)
  log('ids ready')
  const dir = mkdtempSync(path.join(tmpdir(), 'feedops-bench-redis-'))
  const {proc, port} = await startRedis(dir)
  const redis = new Redis({host: '127.0.0.1', port})
  try {
    // 1. feedops buckets, sized for the mappings
    await redis.flushall()
    const map = new PhotoOwnerMap(redis)
    const layout = {buckets: 0, capacity: 0, fieldBytes: 0}
    const m0 = await usedMemory(redis)
    const mapSecs = await fill('feedops buckets', MAPPINGS, 2_000_000, async (from, to) => {
      const pairs: [bigint, bigint][] = []
      for (let i = from; i < to; i++) pairs.push([ids[i]!, BigInt(owners[i]!)])
      await map.setMany(pairs)
    })
    const m1 = await usedMemory(redis)
    const mapBytes = (m1 - m0) / MAPPINGS
    const stats = await map.stats()
    log(`feedops buckets: ${mapBytes.toFixed(2)} bytes/mapping in ${mapSecs}s`)

    // 2. lookups of 1000 owners in one call
    const sample = (): bigint[] => Array.from({length: 1000}, () => ids[Math.floor(Math.random() * MAPPINGS)]!)
    for (let i = 0; i < 20; i++) await map.getMany(sample())
    await redis.config('RESETSTAT')
    const lookupMs: number[] = []
    let wrong = 0
    for (let r = 0; r < ROUNDS; r++) {
      const q = sample()
      const t = process.hrtime.bigint()
      const got = await map.getMany(q)
      lookupMs.push(Number(process.hrtime.bigint() - t) / 1e6)
      if (got.some((g) => g === null)) wrong++
    }
    if (wrong > 0) throw new Error(`${wrong} lookup rounds missed a mapping`)
    const lookupStats = await commandStats(redis)
    const lookupRedisMs = (lookupStats.get('evalsha')?.usec ?? 0) / ROUNDS / 1000
    const hgetUs = lookupStats.get('hget')?.usecPerCall ?? 0

    // 3. plain string keys, one per mapping
    await redis.flushall()
    const p0 = await usedMemory(redis)
    const plainSecs = await fill('plain string keys', SIDE, 500_000, async (from, to) => {
      const pipe = redis.pipeline()
      for (let i = from; i < to; i += 1000) {
        const args: string[] = []
        for (let j = i; j < Math.min(to, i + 1000); j++) args.push(`p:${ids[j]}`, String(owners[j]))
        pipe.mset(...args)
      }
      await pipe.exec()
    })
    const p1 = await usedMemory(redis)
    const plainBytes = (p1 - p0) / SIDE
    const plainMs: number[] = []
    await redis.config('RESETSTAT')
    for (let r = 0; r < ROUNDS; r++) {
      const keys = Array.from({length: 1000}, () => `p:${ids[Math.floor(Math.random() * SIDE)]}`)
      const t = process.hrtime.bigint()
      await redis.mget(...keys)
      plainMs.push(Number(process.hrtime.bigint() - t) / 1e6)
    }
    const plainRedisMs = ((await commandStats(redis)).get('mget')?.usec ?? 0) / ROUNDS / 1000
    log(`plain string keys: ${plainBytes.toFixed(2)} bytes/mapping`)

    // 4. Instagram's id / 1000 buckets on our ids
    await redis.flushall()
    const n0 = await usedMemory(redis)
    await fill('id / 1000 buckets', SIDE, 500_000, async (from, to) => {
      const pipe = redis.pipeline()
      for (let i = from; i < to; i++) pipe.hset(`n:${ids[i]! / 1000n}`, String(ids[i]! % 1000n), String(owners[i]))
      await pipe.exec()
    })
    const n1 = await usedMemory(redis)
    const naiveBytes = (n1 - n0) / SIDE
    const sorted = ids.slice().sort()
    let naiveBuckets = 0
    let prev = -1n
    for (const id of sorted) {
      const b = id / 1000n
      if (b !== prev) naiveBuckets++
      prev = b
    }
    const naiveMean = MAPPINGS / naiveBuckets

    const scaled = SIDE < MAPPINGS ? ` (filled with ${SIDE.toLocaleString()}, per mapping)` : ''
    const rows = [
      ['feedops buckets', MAPPINGS.toLocaleString(), mapBytes.toFixed(2), stats.meanFill.toFixed(1), String(stats.maxFill),
        stats.notListpack === 0 ? 'listpack' : `${stats.notListpack} not listpack`],
      ['plain string keys' + scaled, SIDE.toLocaleString(), plainBytes.toFixed(2), '1.0', '1', 'string'],
      ['id / 1000 buckets' + scaled, SIDE.toLocaleString(), naiveBytes.toFixed(2), naiveMean.toFixed(2), '', 'listpack'],
    ]
    const ratio = plainBytes / mapBytes
    const lookupMedian = median(lookupMs)
    console.log(`\nPhoto→owner map, ${MAPPINGS.toLocaleString()} ids over ${DAYS} days on ${LOGICAL} shards (Redis ${(await redis.info('server')).match(/redis_version:(\S+)/)?.[1]}, hash-max-listpack-entries 128)\n`)
    console.log(table(['scheme', 'mappings', 'bytes/mapping', 'mean entries/key', 'max', 'encoding'], rows))
    console.log(`\nplain string keys / feedops buckets: ${ratio.toFixed(1)}× the memory`)
    console.log(`buckets: ${layout.buckets.toLocaleString()} (capacity ${layout.capacity.toLocaleString()}), ${layout.fieldBytes}-byte fields; fill ${mapSecs.toFixed(0)} s`)
    console.log('\nLookup of 1000 owners in one call, ' + ROUNDS + ' rounds (ms)\n')
    console.log(
      table(
        ['lookup', 'median', 'p90', 'p99', 'in Redis (mean)'],
        [
          ['feedops getMany (1000 ids)', lookupMedian.toFixed(3), percentile(lookupMs, 90).toFixed(3), percentile(lookupMs, 99).toFixed(3), lookupRedisMs.toFixed(3)],
          ['plain MGET (1000 keys)', median(plainMs).toFixed(3), percentile(plainMs, 90).toFixed(3), percentile(plainMs, 99).toFixed(3), plainRedisMs.toFixed(3)],
        ],
      ),
    )
    console.log(`\n"in Redis": the server's own time per call (INFO commandstats). Each of getMany's 1000 HGETs took ${hgetUs.toFixed(2)} µs inside Redis (a listpack bucket is searched from its start).`)
    const checks = {
      bytesPerMappingAtMost16: mapBytes <= 16,
      atLeast5xSmallerThanPlain: ratio >= 5,
      lookupMedianUnder2ms: lookupMedian < 2,
      allBucketsListpack: stats.notListpack === 0,
    }
    console.log('\n' + Object.entries(checks).map(([k, ok]) => `${ok ? 'PASS' : 'FAIL'} ${k}`).join('\n'))
    const out = path.join(repoRoot, 'test/bench/results')
    mkdirSync(out, {recursive: true})
    writeFileSync(
      path.join(out, 'photo-map.json'),
      JSON.stringify(
        {
          when: new Date().toISOString(),
          mappings: MAPPINGS,
          sideMappings: SIDE,
          days: DAYS,
          users: USERS,
          logicalShards: LOGICAL,
          layout,
          feedops: {bytesPerMapping: mapBytes, meanFill: stats.meanFill, maxFill: stats.maxFill, notListpack: stats.notListpack, fillSeconds: mapSecs},
          plainStrings: {bytesPerMapping: plainBytes, measuredAt: SIDE, fillSeconds: plainSecs},
          naiveIdDiv1000: {bytesPerMapping: naiveBytes, measuredAt: SIDE, meanEntriesPerBucket: naiveMean, buckets: naiveBuckets},
          ratioPlainToFeedops: ratio,
          lookup1000: {rounds: ROUNDS, medianMs: lookupMedian, p90Ms: percentile(lookupMs, 90), p99Ms: percentile(lookupMs, 99), redisMeanMs: lookupRedisMs, hgetUs},
          plainMget1000: {medianMs: median(plainMs), p99Ms: percentile(plainMs, 99), redisMeanMs: plainRedisMs},
          checks,
        },
        null,
        2,
      ) + '\n',
    )
  } finally {
    redis.disconnect()
    if (proc.pid !== undefined && proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r))
      process.kill(proc.pid, 'SIGTERM')
      await exited
    }
    rmSync(dir, {recursive: true, force: true})
  }
}

await main()
