/**
 * Feed read benchmark: GET /feed/:id for users following 200 users, with 100k users and 1M photos seeded,
 * the app in one process and 64 connections of load (autocannon) from a second process. Runs the app on the
 * same lab and data with the real strategy (one query per physical server) and the naive baseline (one
 * query per logical shard), each under two loads:
 *   - one reader: every request reads the same feed (the figure). Identical reads in flight at once
 *     share one read (app/data/single-flight.ts), so this measures a hot feed;
 *   - many readers: each request reads the next of `--readers` different feeds, so no two requests in flight
 *     share anything and every request pays for its shard queries.
 * Each load gets an app process of its own, warmed up for 3 s with the same load before it is measured.
 * Prints a table, writes test/bench/results/feed.json.
 *
 *   npm run build && node dist/test/bench/feed.js [--users 100000] [--photos 1000000] [--following 200]
 *                     [--readers 256] [--connections 64] [--duration 15] [--logical 64]
 *
 * The bench starts its own lab (2 Postgres servers, Redis, Memcached) and stops it.
 */
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {parseArgs, promisify} from 'node:util'

import {appConfigFrom, type AppConfig} from '../../app/config.js'
import {loadConfig} from '../../src/config/load.js'
import {schemaName, shardOfUser} from '../../src/shards/placement.js'
import {initLabShards, SECRET, writeAppConfig} from '../app/helpers.js'
import {withClient} from '../shards/helpers.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import {repoRoot, table} from './util.js'

const run = promisify(execFile)
const {values: flags} = parseArgs({
  options: {
    users: {type: 'string', default: '100000'},
    photos: {type: 'string', default: '1000000'},
    following: {type: 'string', default: '200'},
    readers: {type: 'string', default: '256'},
    connections: {type: 'string', default: '64'},
    duration: {type: 'string', default: '15'},
    logical: {type: 'string', default: '64'},
    limit: {type: 'string', default: '20'},
  },
})
const users = Number(flags.users)
const photos = Number(flags.photos)
const following = Number(flags.following)
const readerCount = Number(flags.readers)
const connections = Number(flags.connections)
const duration = Number(flags.duration)
const logical = Number(flags.logical)
const limit = Number(flags.limit)

interface Row {
  strategy: string
  load: string
  rps: number
  p50: number
  p90: number
  p99: number
  max: number
  errors: number
  non2xx: number
  idQueriesPerRead: number
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`)
}

async function seed(lab: TestLab, configFile: string): Promise<void> {
  const started = performance.now()
  await run(
    process.execPath,
    [path.join(repoRoot, 'bin/run.js'), 'lab', 'seed', '--config', configFile, '--users', String(users), '--photos', String(photos)],
    {maxBuffer: 64 * 1024 * 1024, cwd: lab.dir},
  )
  log(`seeded ${users} users and ${photos} photos in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}

/**
 * Readers 7, 8, … (the seed's ids come from the catalog sequence, 1..users) are made to follow exactly
 * `following` users each, spread over the id range (a different spread per reader), written straight into
 * the readers' shards.
 */
async function pickReaders(config: AppConfig): Promise<{readers: bigint[]; followees: bigint[][]}> {
  const step = Math.floor(users / (following + 1))
  const readers = Array.from({length: readerCount}, (_, i) => 7n + BigInt(i))
  const followees = readers.map((reader, r) =>
    Array.from({length: following}, (_, i) => BigInt(1 + ((i + 1) * step + r * 7919) % users)).filter((id) => id !== reader),
  )
  const map = await withClient(config.shards.catalog, (c) => c.query<{shard: number; server: string}>('SELECT shard, server FROM shard_map'))
  const serverOf = new Map(map.rows.map((r) => [r.shard, r.server]))
  for (const server of config.shards.servers) {
    await withClient(server.url, async (c) => {
      for (let r = 0; r < readers.length; r++) {
        const shard = shardOfUser(readers[r]!, logical)
        if (serverOf.get(shard) !== server.name) continue
        await c.query(`DELETE FROM ${schemaName(shard)}.follows WHERE follower_id = $1::bigint`, [readers[r]!.toString()])
        await c.query(`INSERT INTO ${schemaName(shard)}.follows (follower_id, followee_id) SELECT $1::bigint, unnest($2::bigint[])`, [
          readers[r]!.toString(),
          followees[r]!.map(String),
        ])
      }
    })
  }
  return {readers, followees}
}

/**
 * Gets the seed's writes to disk before measuring: the lab's Postgres runs with fsync off, so a gigabyte of
 * freshly loaded pages would otherwise be written back by the checkpointer and the kernel in the middle of
 * the first load, and counted against it.
 */
async function settle(config: AppConfig): Promise<void> {
  const started = performance.now()
  for (const server of config.shards.servers) await withClient(server.url, (c) => c.query('CHECKPOINT'))
  await run('sync', [])
  log(`checkpoint and sync in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}

async function freePort(): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const {port} = srv.address() as net.AddressInfo
  await new Promise((resolve) => srv.close(resolve))
  return port
}

/** The app as it runs on a host: its own process, logging at warn (no access log lines). */
async function startAppProcess(configFile: string): Promise<{child: ChildProcess; url: string}> {
  const port = await freePort()
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist/app/main.js'), '--config', configFile, '--port', String(port)], {
    env: {...process.env, FEEDOPS_APP_SECRET: SECRET},
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  const t0 = Date.now()
  for (;;) {
    if ((await fetch(`${url}/readyz`).catch(() => null))?.status === 200) return {child, url}
    if (child.exitCode !== null || Date.now() - t0 > 30_000) throw new Error('the app did not start')
    await sleep(100)
  }
}

async function stopAppProcess(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await exited
}

/** Closed-loop load from its own process (load.ts, autocannon) over `paths` in turn. */
async function load(url: string, paths: string[], seconds = duration): Promise<{rps: number; p50: number; p90: number; p99: number; max: number; errors: number; non2xx: number}> {
  const {stdout} = await run(
    process.execPath,
    [path.join(repoRoot, 'dist/test/bench/load.js'), '--url', url, '--paths', paths.join(','), '--connections', String(connections), '--duration', String(seconds)],
    {maxBuffer: 16 * 1024 * 1024},
  )
  const r = JSON.parse(stdout) as {
    requests: {average: number}
    latency: {p50: number; p90: number; p99: number; max: number}
    errors: number
    non2xx: number
  }
  return {rps: r.requests.average, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, errors: r.errors, non2xx: r.non2xx}
}

async function measure(lab: TestLab, strategy: 'per-server' | 'per-shard', readers: bigint[]): Promise<Row[]> {
  const file = writeAppConfig(lab, {cdnBase: 'https://cdn.bench.example', logLevel: 'warn', feedStrategy: strategy, poolMax: 16}, `bench-${strategy}.yml`, logical)
  const paths = readers.map((r) => `/feed/${r}?limit=${limit}`)
  const idQueries = strategy === 'per-server' ? 2 : shardsOfFollowees.size
  const rows: Row[] = []
  for (const [name, loadPaths] of [['1 reader', paths.slice(0, 1)], [`${paths.length} readers`, paths]] as const) {
    // A fresh app per load, warmed up with that load: what one load leaves behind (the other load's last
    // requests still running, a pool of idle connections closing on its timeout, a bigger heap) would
    // otherwise be counted against the next.
    const app = await startAppProcess(file)
    try {
      for (const p of loadPaths) {
        const probe = await fetch(app.url + p)
        const body = (await probe.json()) as {items: unknown[]}
        if (probe.status !== 200 || body.items.length !== limit) throw new Error(`${p} answered ${probe.status} with ${body.items.length} items`)
      }
      log(`${strategy}, ${name}: warm-up, then ${connections} connections for ${duration} s`)
      await load(app.url, [...loadPaths], 3)
      rows.push({strategy, load: name, ...(await load(app.url, [...loadPaths])), idQueriesPerRead: idQueries})
    } finally {
      await stopAppProcess(app.child)
    }
  }
  return rows
}

let shardsOfFollowees = new Set<number>()

async function main(): Promise<void> {
  const lab = await startTestLab({postgres: 2, redis: true, memcached: true})
  try {
    const configFile = writeAppConfig(lab, {cdnBase: 'https://cdn.bench.example', secret: SECRET}, 'seed.yml', logical)
    const config = appConfigFrom(loadConfig({flag: configFile}), {})
    await initLabShards(config)
    await seed(lab, configFile)
    const {readers, followees} = await pickReaders(config)
    await settle(config)
    shardsOfFollowees = new Set(followees[0]!.map((f) => shardOfUser(f, logical)))
    const rows = [...(await measure(lab, 'per-server', readers)), ...(await measure(lab, 'per-shard', readers))]
    const [fast, fastMany, slow, slowMany] = rows as [Row, Row, Row, Row]
    const fmt = (n: number, d = 1) => n.toFixed(d)
    process.stdout.write(
      `\nGET /feed/:id?limit=${limit} — ${users} users, ${photos} photos, each reader follows ${followees[0]!.length} users (reader 1: on ${shardsOfFollowees.size} of ${logical} logical shards), 2 physical servers, ${connections} connections, ${duration} s\n\n` +
        table(
          ['strategy', 'load', 'id queries/read', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors'],
          rows.map((r) => [r.strategy, r.load, String(r.idQueriesPerRead), fmt(r.rps, 0), fmt(r.p50), fmt(r.p90), fmt(r.p99), fmt(r.max), String(r.errors + r.non2xx)]),
        ) +
        `\n\nper-server vs per-shard, 1 reader: ${fmt(fast.rps / slow.rps, 2)}× req/s, p99 ${fmt(slow.p99 / fast.p99, 2)}× lower` +
        `\nper-server vs per-shard, ${readers.length} readers: ${fmt(fastMany.rps / slowMany.rps, 2)}× req/s, p99 ${fmt(slowMany.p99 / fastMany.p99, 2)}× lower` +
        `\ngoal p99 < 25 ms (1 reader, per-server): ${fast.p99 < 25 ? 'met' : 'not met'} (${fmt(fast.p99)} ms)\n`,
    )
    const out = path.join(repoRoot, 'test/bench/results')
    mkdirSync(out, {recursive: true})
    writeFileSync(
      path.join(out, 'feed.json'),
      `${JSON.stringify(
        {
          bench: 'feed',
          when: new Date().toISOString(),
          setup: {users, photos, following: followees[0]!.length, readers: readers.length, followeeShards: shardsOfFollowees.size, logical, servers: 2, connections, duration, limit},
          results: rows,
          ratio: {
            oneReader: {rps: fast.rps / slow.rps, p99: slow.p99 / fast.p99},
            manyReaders: {rps: fastMany.rps / slowMany.rps, p99: slowMany.p99 / fastMany.p99},
          },
          goal: {p99BelowMs: 25, met: fast.p99 < 25},
        },
        null,
        2,
      )}\n`,
    )
  } finally {
    await lab.stop()
  }
}

await main()
