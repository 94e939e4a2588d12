/**
 * Photo→owner map benchmark, in one run on one Redis: memory per mapping of one growing map measured at
 * several sizes (Redis's own INFO memory used_memory), the encoding of every key, lookups of 1000 owners
 * against a plain MGET of 1000 string keys, and the write rate of new mappings (with the splits they
 * cause) against the fixed-size map that came before.
 *
 *   npm run build && node dist/test/bench/photo-map.js [--points 1000000,5000000,10000000,20000000,40000000]
 *       [--side 2000000] [--rounds 300] [--writes 1000000] [--baseline DIR]
 *
 * Ids come from the id generator at a realistic upload rate: the largest point's photos over 120 days
 * (with a day/night cycle), owned by 1 M users (some post far more than others), each photo on its
 * owner's logical shard out of 8192. The bench starts its own redis-server on a free loopback port in a
 * temp dir with Redis's stock redis.conf setting hash-max-listpack-entries 128 (the built-in default is
 * 512), and stops it by pid. Lookups alternate round by round between getMany, MGET (the plain keys are
 * the first `--side` ids), the same script call doing no work per id (the floor) and, with `--baseline`,
 * the fixed-size map, so all see the same machine; time inside Redis is then taken one kind at a time.
 * `--baseline DIR` is a build of the fixed-size map (DIR/dist/src/shards/photo-map.js, e.g. commit
 * c617620: `git archive c617620 | tar -x -C DIR`, link node_modules, `npx tsc -p DIR`); its writes
 * alternate with the growing map's in chunks of 100,000.
 * Writes test/bench/results/photo-map.json.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {Redis} from 'ioredis'

import {IdGenerator} from '../../src/shards/ids.js'
import {permuteMany} from '../../src/shards/photo-map/layout.js'
import {PhotoOwnerMap} from '../../src/shards/photo-map/map.js'
import {shardOfUser} from '../../src/shards/placement.js'
import {median, percentile, repoRoot, table} from './util.js'

const {values} = parseArgs({
  options: {
    points: {type: 'string', default: '1000000,5000000,10000000,20000000,40000000'},
    side: {type: 'string', default: '2000000'},
    rounds: {type: 'string', default: '300'},
    users: {type: 'string', default: '1000000'},
    writes: {type: 'string', default: '1000000'},
    baseline: {type: 'string'},
  },
})
const POINTS = values.points.split(',').map(Number)
const MAPPINGS = Math.max(...POINTS)
const SIDE = Math.min(Number(values.side), MAPPINGS)
const ROUNDS = Number(values.rounds)
const USERS = Number(values.users)
const WRITES = Math.min(Number(values.writes), MAPPINGS)
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

interface FixedMap {
  layout(): Promise<{buckets: number; capacity: number}>
  setMany(pairs: [bigint, bigint][], layout: unknown): Promise<void>
}

const pairsOf = (ids: BigUint64Array, owners: Uint32Array, from: number, to: number): [bigint, bigint][] => {
  const out: [bigint, bigint][] = []
  for (let i = from; i < to; i++) out.push([ids[i]!, BigInt(owners[i]!)])
  return out
}

async function main(): Promise<void> {
  log(`generating ${MAPPINGS.toLocaleString()} ids over ${DAYS} days, ${USERS.toLocaleString()} users, ${LOGICAL} shards`)
  const {ids, owners} = makeIds(MAPPINGS)
  log('ids ready')
  const dir = mkdtempSync(path.join(tmpdir(), 'feedops-bench-redis-'))
  const {proc, port} = await startRedis(dir)
  const redis = new Redis({host: '127.0.0.1', port})
  try {
    // 1. one map growing through every point
    await redis.flushall()
    const map = new PhotoOwnerMap(redis)
    const m0 = await usedMemory(redis)
    const points: {mappings: number; bytesPerMapping: number; buckets: number; level: number; split: number; meanFill: number; maxFill: number; overflowKeys: number; notListpack: number; seconds: number}[] = []
    let written = 0
    const t0 = Date.now()
    for (const point of [...POINTS].sort((a, b) => a - b)) {
      // the map's own bulk write (what the seed and reindex-photos use): 1,000 pairs a script call, pipelined
      while (written < point) {
        const to = Math.min(point, written + 1_000_000)
        await map.setMany(pairsOf(ids, owners, written, to))
        written = to
        if (written % 5_000_000 === 0) log(`filled ${written.toLocaleString()} (${Math.round(written / ((Date.now() - t0) / 1000)).toLocaleString()}/s)`)
      }
      const bytes = ((await usedMemory(redis)) - m0) / point
      const st = await map.stats()
      points.push({mappings: point, bytesPerMapping: bytes, buckets: st.state.buckets, level: st.state.level, split: st.state.split, meanFill: st.meanFill, maxFill: st.maxFill, overflowKeys: st.overflowKeys, notListpack: st.notListpack, seconds: (Date.now() - t0) / 1000})
      log(`growing map at ${point.toLocaleString()}: ${bytes.toFixed(2)} bytes/mapping, ${st.state.buckets.toLocaleString()} buckets, ${st.notListpack} not listpack`)
    }

    // 2. lookups of 1000 owners in one call against MGET of 1000 plain keys, alternating round by round
    for (let from = 0; from < SIDE; from += 500_000) {
      const pipe = redis.pipeline()
      for (let i = from; i < Math.min(SIDE, from + 500_000); i += 1000) {
        const args: string[] = []
        for (let j = i; j < Math.min(SIDE, i + 1000); j++) args.push(`p:${ids[j]}`, String(owners[j]))
        pipe.mset(...args)
      }
      await pipe.exec()
    }
    const sample = (n: number): number[] => Array.from({length: 1000}, () => Math.floor(Math.random() * n))
    // the fixed-size map of before, on the same first `--side` ids (sized for them), for the floor side by side
    const fixedLookup = values.baseline
      ? new ((await import(path.resolve(values.baseline, 'dist/src/shards/photo-map.js'))) as {PhotoOwnerMap: new (r: Redis, o: object) => FixedMap & {getMany(ids: bigint[]): Promise<unknown[]>}}).PhotoOwnerMap(redis, {prefix: 'fl', capacity: SIDE})
      : null
    if (fixedLookup) {
      const l = await fixedLookup.layout()
      for (let from = 0; from < SIDE; from += 500_000) await fixedLookup.setMany(pairsOf(ids, owners, from, Math.min(SIDE, from + 500_000)), l)
    }
    // the floor of one call: the same packed ids sent to a script that reads the state and does nothing per id
    const noWork = `local gen = redis.call('GET', ARGV[1] .. ':gen')
redis.call('HMGET', ARGV[1] .. ':' .. gen .. ':state', 'l', 's', 'n')
return string.rep(',', #ARGV[2] / 8 - 1)`
    const noWorkSha = (await redis.script('LOAD', noWork)) as string
    const noWorkCall = async (q: bigint[]): Promise<unknown> => {
      return redis.evalsha(noWorkSha, 0, map.prefix, permuteMany(q))
    }
    const since = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e6
    /** A run that draws 1,000 of the first `range` ids and times `call` on them alone. */
    const timedOn = (range: number, call: (q: bigint[]) => Promise<unknown>) => async (): Promise<number> => {
      const q = sample(range).map((k) => ids[k]!)
      const t = process.hrtime.bigint()
      await call(q)
      return since(t)
    }
    // each run draws its 1,000 ids, then times the call alone (a call's own packing and parsing included)
    const kinds: {name: string; keys: number; command: string; run: () => Promise<number>}[] = [
      {
        name: 'feedops getMany (one Lua call)',
        keys: MAPPINGS,
        command: 'evalsha',
        run: async () => {
          const ks = sample(MAPPINGS)
          const q = ks.map((k) => ids[k]!)
          const t = process.hrtime.bigint()
          const got = await map.getMany(q)
          const took = since(t)
          if (got.some((g, i) => g !== BigInt(owners[ks[i]!]!))) throw new Error('a lookup gave a wrong owner')
          return took
        },
      },
      {
        name: 'plain MGET',
        keys: SIDE,
        command: 'mget',
        run: async () => {
          const keys = sample(SIDE).map((k) => `p:${ids[k]}`)
          const t = process.hrtime.bigint()
          await redis.mget(...keys)
          return since(t)
        },
      },
      {name: 'the same call, no work per id (floor)', keys: MAPPINGS, command: 'evalsha', run: timedOn(MAPPINGS, noWorkCall)},
      ...(fixedLookup ? [{name: 'fixed-size map of before, getMany', keys: SIDE, command: 'evalsha', run: timedOn(SIDE, (q) => fixedLookup.getMany(q))}] : []),
    ]
    for (const kind of kinds) for (let i = 0; i < 20; i++) await kind.run()
    // round by round, every kind in turn, so all see the same machine
    const ms = kinds.map(() => [] as number[])
    for (let r = 0; r < ROUNDS; r++) for (const [j, kind] of kinds.entries()) ms[j]!.push(await kind.run())
    // time inside Redis, one kind at a time (INFO commandstats cannot tell one script from another)
    const inRedisMs: number[] = []
    let hgetUs = 0
    for (const kind of kinds) {
      await redis.config('RESETSTAT')
      for (let i = 0; i < 50; i++) await kind.run()
      const st = await commandStats(redis)
      inRedisMs.push((st.get(kind.command)?.usecPerCall ?? 0) / 1000)
      if (kind === kinds[0]) hgetUs = st.get('hget')?.usecPerCall ?? 0
    }
    const lookup = kinds.map((kind, j) => ({name: kind.name, keys: kind.keys, medianMs: median(ms[j]!), p90Ms: percentile(ms[j]!, 90), p99Ms: percentile(ms[j]!, 99), inRedisMs: inRedisMs[j]!}))

    // 3. writes of new mappings from empty: the growing map (with its splits) against the fixed-size one
    await redis.flushall()
    const fixed = values.baseline
      ? (new ((await import(path.resolve(values.baseline, 'dist/src/shards/photo-map.js'))) as {PhotoOwnerMap: new (r: Redis, o: object) => FixedMap}).PhotoOwnerMap(redis, {prefix: 'fixed'}))
      : null
    const fixedLayout = fixed ? await fixed.layout() : null
    const growing = new PhotoOwnerMap(redis, {prefix: 'grow'})
    let growSecs = 0
    let fixedSecs = 0
    for (let from = 0; from < WRITES; from += 100_000) {
      const pairs = pairsOf(ids, owners, from, Math.min(WRITES, from + 100_000))
      let t = Date.now()
      await growing.setMany(pairs)
      growSecs += (Date.now() - t) / 1000
      if (fixed) {
        t = Date.now()
        await fixed.setMany(pairs, fixedLayout)
        fixedSecs += (Date.now() - t) / 1000
      }
    }
    const growState = await growing.state()
    const growRate = WRITES / growSecs
    const fixedRate = fixed ? WRITES / fixedSecs : null
    log(`writes: growing ${growRate.toFixed(0)}/s${fixedRate ? `, fixed ${fixedRate.toFixed(0)}/s` : ''}`)

    const version = (await redis.info('server')).match(/redis_version:(\S+)/)?.[1]
    console.log(`\nPhoto→owner map growing by linear hashing, ids over ${DAYS} days on ${LOGICAL} shards (Redis ${version}, hash-max-listpack-entries 128)\n`)
    console.log(
      table(
        ['mappings', 'bytes/mapping', 'buckets', 'level', 'split', 'mean fill', 'max', 'overflow keys', 'encoding'],
        points.map((p) => [p.mappings.toLocaleString(), p.bytesPerMapping.toFixed(2), p.buckets.toLocaleString(), String(p.level), p.split.toLocaleString(), p.meanFill.toFixed(1), String(p.maxFill), String(p.overflowKeys), p.notListpack === 0 ? 'all listpack' : `${p.notListpack} not listpack`]),
      ),
    )
    const lookupMedian = lookup[0]!.medianMs
    const plainMedian = lookup[1]!.medianMs
    console.log(`\nLookup of 1000 owners in one call at ${MAPPINGS.toLocaleString()} mappings, ${ROUNDS} rounds alternating (ms)\n`)
    console.log(
      table(
        ['lookup', 'keys', 'median', 'p90', 'p99', 'vs MGET', 'in Redis (mean)'],
        lookup.map((l) => [l.name, l.keys.toLocaleString(), l.medianMs.toFixed(3), l.p90Ms.toFixed(3), l.p99Ms.toFixed(3), `${(l.medianMs / plainMedian).toFixed(2)}×`, l.inRedisMs.toFixed(3)]),
      ),
    )
    console.log(`each HGET ${hgetUs.toFixed(2)} µs inside Redis`)
    console.log(`\nWrites of ${WRITES.toLocaleString()} new mappings from empty, chunks of 100,000 alternating\n`)
    console.log(
      table(
        ['map', 'seconds', 'mappings/s', 'vs fixed'],
        [
          [`growing (${growState.buckets.toLocaleString()} buckets after its splits)`, growSecs.toFixed(2), growRate.toFixed(0), fixedRate ? `${(growRate / fixedRate).toFixed(2)}×` : 'not measured'],
          ...(fixedRate && fixedLayout ? [[`fixed-size (capacity ${fixedLayout.capacity.toLocaleString()}, ${fixedLayout.buckets.toLocaleString()} buckets)`, fixedSecs.toFixed(2), fixedRate.toFixed(0), '1.00×']] : []),
        ],
      ),
    )
    const checks = {
      bytesPerMappingAtMost16Everywhere: points.every((p) => p.bytesPerMapping <= 16),
      allKeysListpackEverywhere: points.every((p) => p.notListpack === 0),
      lookupAtMost1_6xMget: lookupMedian <= 1.6 * plainMedian,
      writesAtLeast0_8xFixed: fixedRate === null ? null : growRate >= 0.8 * fixedRate,
    }
    console.log('\n' + Object.entries(checks).map(([k, ok]) => `${ok === null ? 'SKIP' : ok ? 'PASS' : 'FAIL'} ${k}`).join('\n'))
    const out = path.join(repoRoot, 'test/bench/results')
    mkdirSync(out, {recursive: true})
    writeFileSync(
      path.join(out, 'photo-map.json'),
      JSON.stringify(
        {
          when: new Date().toISOString(),
          redis: version,
          days: DAYS,
          users: USERS,
          logicalShards: LOGICAL,
          points,
          lookup1000: {atMappings: MAPPINGS, rounds: ROUNDS, hgetUs, kinds: lookup},
          writes: {mappings: WRITES, growing: {seconds: growSecs, perSecond: growRate, buckets: growState.buckets}, fixed: fixedRate && fixedLayout ? {seconds: fixedSecs, perSecond: fixedRate, capacity: fixedLayout.capacity, buckets: fixedLayout.buckets} : null},
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
