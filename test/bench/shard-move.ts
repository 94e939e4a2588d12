/**
 * Shard move benchmark, on one lab (2 Postgres servers, Redis, Memcached, the feed app in-process):
 *
 * 1. Freeze window: 16 moves (`feedops shards move`, then `complete`), each of a different logical shard,
 *    under steady photo writes through the app to every shard. Per move: how long the shard's writes were
 *    held (the cutover's freeze, from the CLI's result); failed and lost writes (every acknowledged photo
 *    must be on the shard's new home exactly once); client write latency p50/p99 of writes to the moving
 *    shard during its cutover, against all writes in a quiet period before any move.
 * 2. Copy of one logical shard holding 1 M photos (plus users, follows, likes): `feedops shards move` from
 *    start to the map flip, against `pg_dump -n SCHEMA | psql` into another database of the same target
 *    server (the data alone, no cutover), same shard, same run; and the floor: binary COPY out | COPY in
 *    of the same tables alone (no keys or indexes), one after another.
 *
 * Prints both tables and writes test/bench/results/shard-move.json.
 *
 *   npm run build && node dist/test/bench/shard-move.js [--moves 16] [--photos 1000000] [--concurrency 8]
 *
 * --photos 0 skips the copy comparison.
 */
import {execFile, spawn} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'
import {loadavg} from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {schemaName} from '../../src/shards/placement.js'
import {captureLogs, startApp} from '../app/helpers.js'
import {cli} from '../shards/helpers.js'
import {captionsOn, mapServer, shards, sql, startLoad, startMoveLab, usersIn, waitUntil, LOGICAL, type MoveLab, type Write} from '../shards/move-helpers.js'
import {median, percentile, repoRoot, table} from './util.js'

const {values} = parseArgs({
  options: {moves: {type: 'string', default: '16'}, photos: {type: 'string', default: '1000000'}, concurrency: {type: 'string', default: '8'}},
})
const MOVES = Number(values.moves)
const PHOTOS = Number(values.photos)
const CONCURRENCY = Number(values.concurrency)

const log = (s: string) => process.stderr.write(`${s}\n`)
const f1 = (x: number) => x.toFixed(1)

interface MoveRow {
  shard: number
  from: string
  to: string
  freezeMs: number
  cutoverWrites: number
  p50: number
  p99: number
}

async function freezeWindows(ml: MoveLab): Promise<{moves: MoveRow[]; quiet: {writes: number; p50: number; p99: number}; failed: number; lost: number}> {
  const app = await startApp(ml.config, captureLogs().stream)
  try {
    const byShard = await usersIn(app.url, Array.from({length: LOGICAL}, (_, i) => i), 2, 'bench')
    const users = [...byShard.values()].flat()
    const load = startLoad([app.url], users, {concurrency: CONCURRENCY, tag: 'bm'})
    await new Promise((r) => setTimeout(r, 5000))
    const quietEnd = performance.now()
    const moves: MoveRow[] = []
    const cutovers: {shard: number; from: number; to: number}[] = []
    for (let shard = 0; shard < MOVES; shard++) {
      const s = shard % LOGICAL
      const {server} = await mapServer(ml, s)
      const to = server === 'pg1' ? 'pg2' : 'pg1'
      const t0 = Date.now() - performance.now() // epoch ms at performance.now() = 0
      const r = await shards(ml, ['move', String(s), '--to', to])
      if (r.code !== 0) throw new Error(`move ${s}: ${r.stdout}${r.stderr}`)
      const cut = r.json.phases.find((p: {phase: string}) => p.phase === 'cutover')
      const from = Date.parse(cut.startedAt) - t0
      cutovers.push({shard: s, from, to: from + cut.ms})
      const c = await shards(ml, ['complete', String(s)])
      if (c.code !== 0) throw new Error(`complete ${s}: ${c.stdout}${c.stderr}`)
      moves.push({shard: s, from: server, to, freezeMs: r.json.facts.freezeMs, cutoverWrites: 0, p50: 0, p99: 0})
      log(`  move ${moves.length}/${MOVES}: shard ${s} ${server} → ${to}, writes held ${f1(r.json.facts.freezeMs)} ms`)
    }
    await new Promise((r) => setTimeout(r, 500))
    const writes = await load.stop()
    const shardOfWrite = (w: Write) => users[Number(w.caption.split('-')[1]) % users.length]!.shard
    for (const [i, c] of cutovers.entries()) {
      const during = writes.filter((w) => shardOfWrite(w) === c.shard && w.startedAt <= c.to && w.endedAt >= c.from).map((w) => w.ms)
      Object.assign(moves[i]!, {cutoverWrites: during.length, p50: during.length ? median(during) : 0, p99: during.length ? percentile(during, 99) : 0})
    }
    const quiet = writes.filter((w) => w.endedAt < quietEnd).map((w) => w.ms)
    const failed = writes.filter((w) => w.status !== 201).length
    let lost = 0
    for (let s = 0; s < LOGICAL; s++) {
      const home = (await mapServer(ml, s)).server
      const seen = await captionsOn(ml.url(home), s, 'bm')
      lost += writes.filter((w) => w.status === 201 && shardOfWrite(w) === s && seen.get(w.caption) !== 1).length
    }
    const allDuring = cutovers.flatMap((c) => writes.filter((w) => shardOfWrite(w) === c.shard && w.startedAt <= c.to && w.endedAt >= c.from).map((w) => w.ms))
    log(`  ${writes.length} writes, ${failed} failed, ${lost} lost; cutover writes p50 ${f1(median(allDuring))} ms p99 ${f1(percentile(allDuring, 99))} ms`)
    return {moves, quiet: {writes: quiet.length, p50: median(quiet), p99: percentile(quiet, 99)}, failed, lost}
  } finally {
    await app.stop()
  }
}

/** One shard with `photos` photos, a user per 50 photos, 10 follows per user, a like per 3 photos. */
async function fillShard(ml: MoveLab, shard: number, photos: number): Promise<number> {
  const s = `"${schemaName(shard)}"`
  const usersN = Math.max(1, Math.floor(photos / 50))
  const url = ml.url((await mapServer(ml, shard)).server)
  await sql(url, `INSERT INTO ${s}.users (id, username, name, bio) SELECT (1::bigint << 40) + g, 'bench' || g, 'User ' || g, repeat('b', 40) FROM generate_series(1, $1) g`, [usersN])
  await sql(
    url,
    `INSERT INTO ${s}.photos (id, user_id, caption, s3_key, created_at)
     SELECT (1::bigint << 50) + g, (1::bigint << 40) + 1 + g % $2, 'caption ' || g, 'photos/' || md5(g::text) || '.jpg', now() - g * interval '1 second'
     FROM generate_series(1, $1) g`,
    [photos, usersN],
  )
  await sql(url, `INSERT INTO ${s}.follows (follower_id, followee_id) SELECT (1::bigint << 40) + 1 + g / 10, g * 7919 FROM generate_series(0, $1 - 1) g`, [usersN * 10])
  await sql(url, `INSERT INTO ${s}.likes (photo_id, user_id) SELECT (1::bigint << 50) + g * 3, g FROM generate_series(1, $1) g`, [Math.floor(photos / 3)])
  await sql(url, `VACUUM ANALYZE ${s}.users, ${s}.photos, ${s}.follows, ${s}.likes`)
  const [r] = await sql<{n: string}>(url, `SELECT (SELECT count(*) FROM ${s}.users) + (SELECT count(*) FROM ${s}.photos) + (SELECT count(*) FROM ${s}.follows) + (SELECT count(*) FROM ${s}.likes) AS n`)
  return Number(r!.n)
}

/** `feedops shards move` from spawn to the moment the catalog points at the target. */
async function timeMoveToFlip(ml: MoveLab, shard: number, to: string): Promise<{seconds: number; phases: {phase: string; ms: number}[]; indexMs: number}> {
  const started = performance.now()
  const child = spawn(process.execPath, [cli, 'shards', 'move', String(shard), '--to', to, '--config', ml.file, '--json'], {cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe']})
  let out = ''
  let err = ''
  child.stdout.on('data', (b: Buffer) => (out += b.toString()))
  child.stderr.on('data', (b: Buffer) => (err += b.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  let flippedAt = 0
  await waitUntil('the flip', async () => {
    if ((await mapServer(ml, shard)).server === to) {
      flippedAt = performance.now()
      return true
    }
    return false
  }, 600_000)
  if ((await exited) !== 0) throw new Error(`move failed: ${out}${err}`)
  const result = JSON.parse(out)
  return {seconds: (flippedAt - started) / 1000, phases: result.phases, indexMs: result.facts.indexMs ?? 0}
}

function run(cmd: string): Promise<void> {
  return new Promise((resolve, reject) => execFile('bash', ['-o', 'pipefail', '-c', cmd], {maxBuffer: 64 << 20}, (e, _o, se) => (e ? reject(new Error(`${cmd}: ${se || e.message}`)) : resolve())))
}

interface CopyRun {
  rows: number
  feedops: number
  dump: number
  /** COPY out | COPY in of the same tables alone (binary, no indexes, one table after another): the floor. */
  floor: number
  phases: {phase: string; ms: number}[]
  indexMs: number
}

async function copyVsDump(ml: MoveLab): Promise<CopyRun> {
  const shard = LOGICAL - 1
  const schema = schemaName(shard)
  const {server} = await mapServer(ml, shard)
  const to = server === 'pg1' ? 'pg2' : 'pg1'
  log(`  filling shard ${shard} on ${server} with ${PHOTOS} photos…`)
  const rows = await fillShard(ml, shard, PHOTOS)
  const src = new URL(ml.url(server))
  const dst = new URL(ml.url(to))
  const psqlSrc = `psql -X -q -v ON_ERROR_STOP=1 -h ${src.hostname} -p ${src.port} -U postgres feedops`
  const psqlDst = (db: string) => `psql -X -q -v ON_ERROR_STOP=1 -h ${dst.hostname} -p ${dst.port} -U postgres ${db}`
  const admin = ml.url(to).replace(/\/[^/]+$/, '/postgres')
  await sql(admin, 'CREATE DATABASE dump_target')
  await sql(ml.url(server), 'CHECKPOINT')
  log('  pg_dump | psql…')
  const t0 = performance.now()
  await run(`pg_dump -h ${src.hostname} -p ${src.port} -U postgres -n ${schema} feedops | ${psqlDst('dump_target')} >/dev/null`)
  const dump = (performance.now() - t0) / 1000
  await sql(admin, 'DROP DATABASE dump_target')
  log('  COPY out | COPY in, tables alone…')
  await sql(admin, 'CREATE DATABASE floor_target')
  // The tables without their keys and indexes (those are pg_dump's post-data section).
  await run(`pg_dump -h ${src.hostname} -p ${src.port} -U postgres -n ${schema} --section=pre-data feedops | ${psqlDst('floor_target')} >/dev/null`)
  const tables = (await sql<{t: string}>(ml.url(server), "SELECT relname AS t FROM pg_class WHERE relnamespace = $1::regnamespace AND relkind = 'r'", [schema])).map((r) => r.t)
  const t1 = performance.now()
  for (const t of tables) {
    await run(`${psqlSrc} -c 'COPY ${schema}.${t} TO STDOUT (FORMAT binary)' | ${psqlDst('floor_target')} -c 'COPY ${schema}.${t} FROM STDIN (FORMAT binary)'`)
  }
  const floor = (performance.now() - t1) / 1000
  await sql(admin, 'DROP DATABASE floor_target')
  await sql(ml.url(to), 'CHECKPOINT')
  log('  feedops shards move…')
  const m = await timeMoveToFlip(ml, shard, to)
  return {rows, feedops: m.seconds, dump, floor, phases: m.phases.map((p) => ({phase: p.phase, ms: p.ms})), indexMs: m.indexMs}
}

const ml = await startMoveLab()
try {
  log(`freeze window: ${MOVES} moves under ${CONCURRENCY} concurrent writers…`)
  const fw = await freezeWindows(ml)
  log('copy of one shard…')
  const copy = PHOTOS > 0 ? await copyVsDump(ml) : undefined
  const freeze = fw.moves.map((m) => m.freezeMs)
  const during = fw.moves.filter((m) => m.cutoverWrites > 0)
  console.log(
    table(
      ['MOVES', 'FREEZE MEDIAN ms', 'FREEZE MAX ms', 'FAILED', 'LOST', 'QUIET p50/p99 ms', 'CUTOVER p50/p99 ms'],
      [
        [
          String(fw.moves.length),
          f1(median(freeze)),
          f1(Math.max(...freeze)),
          String(fw.failed),
          String(fw.lost),
          `${f1(fw.quiet.p50)} / ${f1(fw.quiet.p99)}`,
          `${f1(median(during.map((m) => m.p50)))} / ${f1(Math.max(...during.map((m) => m.p99)))}`,
        ],
      ],
    ),
  )
  if (copy) {
    console.log()
    console.log(
      table(
        ['SHARD ROWS', 'feedops move → flip s', 'pg_dump | psql s', 'RATIO', 'COPY out | in alone s', 'RATIO TO FLOOR'],
        [[String(copy.rows), copy.feedops.toFixed(2), copy.dump.toFixed(2), (copy.feedops / copy.dump).toFixed(2), copy.floor.toFixed(2), (copy.feedops / copy.floor).toFixed(2)]],
      ),
    )
    console.log(`  feedops phases: ${copy.phases.map((p) => `${p.phase} ${(p.ms / 1000).toFixed(2)} s`).join(', ')}; of the copy, indexes after the last rows ${(copy.indexMs / 1000).toFixed(2)} s`)
  }
  const load = loadavg().map((x) => x.toFixed(1))
  console.log(`  load average at the end: ${load.join(' ')} (1, 5, 15 min)`)
  const out = path.join(repoRoot, 'test/bench/results')
  mkdirSync(out, {recursive: true})
  writeFileSync(path.join(out, copy ? 'shard-move.json' : 'shard-move-freeze.json'), JSON.stringify({date: new Date().toISOString(), load, concurrency: CONCURRENCY, freeze: fw, copy}, null, 2))
} finally {
  await ml.lab.stop()
}
