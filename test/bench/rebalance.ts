/**
 * Rebalance benchmark, on one lab (4 Postgres servers, Redis, Memcached, the feed app in-process), under
 * steady photo writes through the app to every shard:
 *
 * 1. `feedops shards rebalance --strategy count --complete` from 2 servers to 4 (the logical shards start on
 *    pg1 and pg2; pg3 and pg4 are added to the config): total time, moves per minute, per move the copy,
 *    catch-up, verify, cutover (and complete) times, the freeze of every move.
 * 2. The naive way back to 2 servers: per shard, writes to it stopped, `pg_dump -n SCHEMA | psql` onto the
 *    other server, the map flipped, the old schema dropped, writes resumed; one schema at a time. Total
 *    time, and the total time writes were stopped against feedops's total freeze.
 * 3. The same 2 → 4 as 1, one move at a time (`--concurrency 1`): moves per minute against 1.
 *
 * Writes failed (during 1 and 3) and lost (every acknowledged photo on its shard's home exactly once, at the
 * end) are counted. Prints the tables and writes test/bench/results/rebalance.json.
 *
 *   npm run build && node dist/test/bench/rebalance.js [--shards 64] [--rows 2000000] [--concurrency 4]
 */
import {execFile} from 'node:child_process'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {loadavg} from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {Redis} from 'ioredis'
import {parse, stringify} from 'yaml'

import {appConfigFrom} from '../../app/config.js'
import {loadConfig} from '../../src/config/load.js'
import {labUp} from '../../src/lab/index.js'
import {publishMapVersion} from '../../src/shards/map-events.js'
import {schemaName, shardOfUser} from '../../src/shards/placement.js'
import {call, captureLogs, CDN, initLabShards, SECRET, startApp} from '../app/helpers.js'
import {runCli} from '../shards/helpers.js'
import {captionsOn, sql} from '../shards/move-helpers.js'
import {startTestLab} from '../support/lab.js'
import {median, repoRoot, settle, table} from './util.js'

const {values} = parseArgs({
  options: {shards: {type: 'string', default: '64'}, rows: {type: 'string', default: '2000000'}, concurrency: {type: 'string', default: '4'}},
})
const SHARDS = Number(values.shards)
const ROWS = Number(values.rows)
const LOAD = Number(values.concurrency)

const log = (s: string) => process.stderr.write(`${s}\n`)
const f1 = (x: number) => x.toFixed(1)

interface User {
  id: string
  token: string
  shard: number
}

interface Write {
  caption: string
  shard: number
  status: number
}

/** Photo writes through the app, LOAD at a time, skipping shards whose writes are stopped (the naive way). */
function startLoad(url: string, users: User[]) {
  const writes: Write[] = []
  const stoppedShards = new Set<number>()
  let stopped = false
  let n = 0
  let phase = 'idle'
  const failedIn = new Map<string, number>()
  const worker = async () => {
    while (!stopped) {
      const i = n++
      const user = users[i % users.length]!
      if (stoppedShards.has(user.shard)) {
        await new Promise((r) => setTimeout(r, 2))
        continue
      }
      const caption = `bench-${i}`
      const r = await call(url, 'POST', '/photos', {token: user.token, body: {caption, s3Key: `p/${caption}.jpg`}}).catch(() => ({status: 0}))
      writes.push({caption, shard: user.shard, status: r.status})
      if (r.status !== 201) failedIn.set(phase, (failedIn.get(phase) ?? 0) + 1)
    }
  }
  const running = Promise.all(Array.from({length: LOAD}, worker))
  return {
    writes,
    stoppedShards,
    failedIn,
    setPhase: (p: string) => (phase = p),
    stop: async () => {
      stopped = true
      await running
    },
  }
}

function sh(cmd: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile('bash', ['-o', 'pipefail', '-c', cmd], {maxBuffer: 64 << 20}, (e, _o, se) => (e ? reject(new Error(`${cmd}: ${se || e.message}`)) : resolve())),
  )
}

interface MoveRow {
  shard: number
  from: string
  to: string
  outcome: string
  freezeMs: number | null
  ms: number | null
  phases: Record<string, number>
}

/** Before each timed run: the seeding's or the last run's WAL checkpointed, and the machine as quiet as it gets. */
async function quiet(urls: string[]): Promise<string> {
  await Promise.all(urls.map((u) => sql(u, 'CHECKPOINT')))
  const s = await settle(30, 20_000)
  return `settled ${f1(s.waitedMs / 1000)} s, ${f1(s.busyPct)}% busy; load average ${loadavg().map(f1).join(' ')}`
}

async function rebalance(file: string, args: string[]): Promise<{seconds: number; moves: MoveRow[]}> {
  const t0 = performance.now()
  const r = await runCli(['shards', 'rebalance', '--strategy', 'count', '--complete', ...args, '--config', file, '--json'], {timeout: 3_600_000})
  const seconds = (performance.now() - t0) / 1000
  if (r.code !== 0) throw new Error(`rebalance ${args.join(' ')}: exit ${r.code}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`)
  return {seconds, moves: JSON.parse(r.stdout).moves as MoveRow[]}
}

function summarize(name: string, run: {seconds: number; moves: MoveRow[]}) {
  const phase = (p: string) => median(run.moves.map((m) => m.phases[p] ?? 0)) / 1000
  const freezes = run.moves.map((m) => m.freezeMs ?? NaN).filter(Number.isFinite)
  return {
    name,
    moves: run.moves.length,
    seconds: run.seconds,
    movesPerMin: (run.moves.length / run.seconds) * 60,
    medianS: {copy: phase('copy'), catchUp: phase('catch-up'), verify: phase('verify'), cutover: phase('cutover'), complete: phase('complete')},
    freeze: {medianMs: median(freezes), maxMs: Math.max(...freezes), totalMs: freezes.reduce((a, b) => a + b, 0), count: freezes.length},
  }
}

async function main(): Promise<void> {
  log(`rebalance bench: ${SHARDS} logical shards, ${ROWS} photo rows, ${LOAD} writers; load average ${loadavg().map(f1).join(' ')}`)
  const lab = await startTestLab({postgres: 2, redis: true, memcached: true})
  const redis = new Redis(`redis://127.${lab.net}.0.1:6380`, {lazyConnect: true})
  try {
    await labUp({dir: lab.dir, postgres: 4})
    const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: Record<string, Record<string, any>>}
    const env = doc.environments.lab!
    env.shards.logical = SHARDS
    env.app = {cdnBase: CDN, secret: SECRET, freezeWaitMs: 3000, mapPollMs: 200}
    env.moves = {freezeLeaseMs: 2000}
    const all = env.shards.servers as {name: string; url: string}[]
    const write = (name: string, servers: {name: string}[]) => {
      const file = path.join(lab.dir, name)
      writeFileSync(file, stringify({...doc, environments: {lab: {...env, shards: {...env.shards, servers}}}}))
      return file
    }
    const twoFile = write('two.yml', all.slice(0, 2))
    const fourFile = write('four.yml', all)
    const four = appConfigFrom(loadConfig({flag: fourFile}), {})
    await initLabShards(appConfigFrom(loadConfig({flag: twoFile}), {}))
    const url = (server: string) => all.find((s) => s.name === server)!.url
    const catalog = four.shards.catalog

    const app = await startApp(four, captureLogs().stream)
    try {
      // A user per shard, through the app; then the rows, straight into each shard.
      const users: User[] = []
      const have = new Set<number>()
      for (let i = 0; have.size < SHARDS && i < 20 * SHARDS; i++) {
        const r = await call(app.url, 'POST', '/users', {body: {username: `bench_${i}`, name: `bench ${i}`}})
        const shard = shardOfUser(BigInt(r.body.user.id), SHARDS)
        if (have.has(shard)) continue
        have.add(shard)
        users.push({id: r.body.user.id, token: r.body.token, shard})
      }
      const per = Math.ceil(ROWS / SHARDS)
      log(`seeding ${per} photos in each of ${SHARDS} shards…`)
      const t0 = performance.now()
      await Promise.all(
        ['pg1', 'pg2'].map(async (server) => {
          for (const u of users.filter((x) => x.shard % 2 === (server === 'pg1' ? 0 : 1))) {
            const s = schemaName(u.shard)
            await sql(
              url(server),
              `INSERT INTO "${s}".photos (id, user_id, s3_key, caption) SELECT (g::bigint << 23) | (${u.shard} << 10), $1, 'seed/' || g, 'seed' FROM generate_series(1, ${per}) g`,
              [u.id],
            )
          }
          await sql(url(server), 'VACUUM ANALYZE')
        }),
      )
      log(`  seeded in ${f1((performance.now() - t0) / 1000)} s`)
      await redis.connect()

      const load = startLoad(app.url, users)
      await new Promise((r) => setTimeout(r, 3000))

      // 1. feedops, parallel (default: one move per source and per target server).
      const servers = all.map((x) => x.url)
      const quietness: Record<string, string> = {}
      quietness.parallel = await quiet(servers)
      log(`feedops shards rebalance 2 → 4 (parallel)… (${quietness.parallel})`)
      load.setPhase('parallel')
      const parallel = summarize('feedops, one move per server pair (default)', await rebalance(fourFile, []))
      log(`  ${parallel.moves} moves in ${f1(parallel.seconds)} s`)

      // 2. The naive way back: pg_dump -n | psql per schema, writes to that shard stopped meanwhile.
      quietness.naive = await quiet(servers)
      log(`naive: pg_dump -n | psql per schema back to 2 servers… (${quietness.naive})`)
      load.setPhase('naive')
      const onServer = await sql<{shard: number; server: string}>(catalog, "SELECT shard, server FROM shard_map WHERE server IN ('pg3', 'pg4') ORDER BY shard")
      const naiveStops: number[] = []
      const n0 = performance.now()
      for (const {shard, server} of onServer) {
        const to = server === 'pg3' ? 'pg1' : 'pg2'
        const s = schemaName(shard)
        const src = new URL(url(server))
        const dst = new URL(url(to))
        const stop0 = performance.now()
        load.stoppedShards.add(shard)
        // Writes in flight to the shard finish first (a writer skips it from now on).
        await new Promise((r) => setTimeout(r, 50))
        await sh(`pg_dump -h ${src.hostname} -p ${src.port} -U postgres -n ${s} feedops | psql -X -q -v ON_ERROR_STOP=1 -h ${dst.hostname} -p ${dst.port} -U postgres feedops >/dev/null`)
        const [v] = await sql<{version: string}>(
          catalog,
          `WITH u AS (UPDATE shard_map SET server = $2, updated_at = now() WHERE shard = $1) UPDATE map_version SET version = version + 1 RETURNING version::text`,
          [shard, to],
        )
        await publishMapVersion(redis, Number(v!.version))
        await new Promise((r) => setTimeout(r, 250)) // the app's map poll, for an app that missed the announcement
        load.stoppedShards.delete(shard)
        naiveStops.push(performance.now() - stop0)
        await sql(url(server), `DROP SCHEMA "${s}" CASCADE`)
      }
      const naive = {moves: onServer.length, seconds: (performance.now() - n0) / 1000, stoppedMs: naiveStops.reduce((a, b) => a + b, 0), medianStopMs: median(naiveStops)}
      log(`  ${naive.moves} schemas in ${f1(naive.seconds)} s, writes stopped ${f1(naive.stoppedMs / 1000)} s in all`)

      // 3. feedops, one move at a time.
      quietness.serial = await quiet(servers)
      log(`feedops shards rebalance 2 → 4 (--concurrency 1)… (${quietness.serial})`)
      load.setPhase('serial')
      const serial = summarize('feedops, one move at a time (--concurrency 1)', await rebalance(fourFile, ['--concurrency', '1']))
      log(`  ${serial.moves} moves in ${f1(serial.seconds)} s`)
      await new Promise((r) => setTimeout(r, 1000))
      await load.stop()

      // Lost: every acknowledged write on its shard's home, exactly once.
      const homes = new Map((await sql<{shard: number; server: string}>(catalog, 'SELECT shard, server FROM shard_map')).map((r) => [r.shard, r.server]))
      let lost = 0
      let doubled = 0
      for (const u of users) {
        const seen = await captionsOn(url(homes.get(u.shard)!), u.shard, 'bench')
        for (const w of load.writes.filter((x) => x.shard === u.shard && x.status === 201)) {
          const n = seen.get(w.caption) ?? 0
          if (n === 0) lost++
          if (n > 1) doubled++
        }
      }
      const acked = load.writes.filter((w) => w.status === 201).length
      const failed = {parallel: load.failedIn.get('parallel') ?? 0, serial: load.failedIn.get('serial') ?? 0, naive: load.failedIn.get('naive') ?? 0}

      const row = (r: ReturnType<typeof summarize>) => [
        r.name,
        String(r.moves),
        f1(r.seconds),
        f1(r.movesPerMin),
        f1(r.medianS.copy),
        f1(r.medianS.catchUp),
        f1(r.medianS.verify),
        f1(r.medianS.cutover),
        f1(r.medianS.complete),
        f1(r.freeze.medianMs),
        f1(r.freeze.maxMs),
      ]
      console.log(`\nRebalance 2 → 4 servers: ${SHARDS} logical shards, ${ROWS} seeded photo rows, ${LOAD} writers through the app\n`)
      console.log(
        table(
          ['RUN', 'MOVES', 'TOTAL s', 'MOVES/MIN', 'COPY s', 'CATCH-UP s', 'VERIFY s', 'CUTOVER s', 'COMPLETE s', 'FREEZE p50 ms', 'FREEZE max ms'],
          [row(parallel), row(serial)],
        ),
      )
      console.log(`\nparallel ÷ one at a time: ${f1(parallel.movesPerMin / serial.movesPerMin)}× moves per minute (per-move times are medians)`)
      console.log(
        `\n${table(
          ['WAY', 'SCHEMAS', 'TOTAL s', 'WRITES STOPPED s (sum)', 'PER SCHEMA p50 ms'],
          [
            ['pg_dump -n | psql, writes stopped per schema', String(naive.moves), f1(naive.seconds), f1(naive.stoppedMs / 1000), f1(naive.medianStopMs)],
            ['feedops (parallel run): total freeze', String(parallel.moves), f1(parallel.seconds), f1(parallel.freeze.totalMs / 1000), f1(parallel.freeze.medianMs)],
          ],
        )}`,
      )
      console.log(`\nwrites stopped, naive ÷ feedops total freeze: ${f1(naive.stoppedMs / parallel.freeze.totalMs)}×`)
      console.log(`writes: ${acked} acknowledged; failed ${failed.parallel} (parallel run), ${failed.serial} (one at a time), ${failed.naive} (naive); lost ${lost}, doubled ${doubled}`)
      const out = path.join(repoRoot, 'test/bench/results')
      mkdirSync(out, {recursive: true})
      writeFileSync(
        path.join(out, 'rebalance.json'),
        JSON.stringify({date: new Date().toISOString(), shards: SHARDS, rows: ROWS, writers: LOAD, loadavg: loadavg(), quietness, parallel, serial, naive, writes: {acked, failed, lost, doubled}}, null, 2),
      )
    } finally {
      await app.stop()
    }
  } finally {
    redis.disconnect()
    await lab.stop()
  }
}

await main()
