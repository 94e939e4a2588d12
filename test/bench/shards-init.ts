/**
 * `shards init` benchmark: 8192 logical shards over 4 lab Postgres servers through the real CLI
 * (batched DDL, servers in parallel), against a naive baseline in the same lab and run: one schema
 * per transaction, one shard after another (what a first loop looks like). Prints a table with
 * seconds and schemas/s and the ratio, writes test/bench/results/shards-init.json.
 *
 *   npm run build && node dist/test/bench/shards-init.js [--logical 8192] [--batch 64] [--naive 1024]
 *
 * --naive N: shards the baseline creates (default 1024; its rate is steady, so it is compared by
 * schemas/s; pass 8192 to time it in full).
 */
import {execFile} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {parseArgs} from 'node:util'

import pg from 'pg'

import {ensureCatalog} from '../../src/shards/catalog.js'
import {shardSchemaSql} from '../../src/shards/ddl.js'
import {DEFAULT_EPOCH, epochMs} from '../../src/shards/ids.js'
import {assignShards} from '../../src/shards/placement.js'
import {withClient} from '../shards/helpers.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import {repoRoot, table} from './util.js'

const {values} = parseArgs({options: {logical: {type: 'string', default: '8192'}, batch: {type: 'string', default: '64'}, naive: {type: 'string', default: '1024'}}})
const logical = Number(values.logical)
const batch = Number(values.batch)
const naiveCount = Math.min(Number(values.naive), logical)
const SERVERS = 4

const url = (lab: TestLab, i: number, db: string) => `postgres://postgres@127.${lab.net}.0.1:${5433 + i - 1}/${db}`

/** Runs `feedops shards init` and reports progress from the catalog every 2 s (stderr). */
async function feedopsInit(lab: TestLab): Promise<{seconds: number; result: {created: number; complete: boolean; version: number}}> {
  const started = performance.now()
  const timer = setInterval(() => {
    withClient(url(lab, 1, 'feedops_catalog'), (c) => c.query('SELECT count(*) FILTER (WHERE created_at IS NOT NULL)::int AS n FROM shard_init'))
      .then((r) => process.stderr.write(`  feedops: ${r.rows[0].n}/${logical} schemas, ${((performance.now() - started) / 1000).toFixed(1)} s\n`))
      .catch(() => undefined)
  }, 2000)
  try {
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [path.join(repoRoot, 'bin/run.js'), 'shards', 'init', '--config', lab.configFile, '--logical', String(logical), '--batch', String(batch), '--json'],
        {cwd: repoRoot, maxBuffer: 64 << 20, timeout: 600_000},
        (err, out, errOut) => (err ? reject(new Error(`shards init failed: ${errOut || err.message}`)) : resolve(out)),
      ),
    )
    return {seconds: (performance.now() - started) / 1000, result: JSON.parse(stdout)}
  } finally {
    clearInterval(timer)
  }
}

/** The baseline: a catalog and the same DDL, one schema per transaction, one after another. */
async function naiveInit(lab: TestLab): Promise<{seconds: number; count: number}> {
  await withClient(url(lab, 1, 'postgres'), (c) => c.query('CREATE DATABASE naive_catalog'))
  const clients: pg.Client[] = []
  for (let i = 1; i <= SERVERS; i++) {
    await withClient(url(lab, i, 'postgres'), (c) => c.query('CREATE DATABASE naive'))
    const c = new pg.Client({connectionString: url(lab, i, 'naive')})
    await c.connect()
    clients.push(c)
  }
  const catalog = new pg.Client({connectionString: url(lab, 1, 'naive_catalog')})
  await catalog.connect()
  const epoch = epochMs(DEFAULT_EPOCH)
  const servers = assignShards(logical, Array.from({length: SERVERS}, (_, i) => ({name: `pg${i + 1}`})))
  const started = performance.now()
  try {
    await ensureCatalog(catalog)
    for (let shard = 0; shard < naiveCount; shard++) {
      const server = Number(servers[shard]!.slice(2)) - 1
      const c = clients[server]!
      await c.query('BEGIN')
      await c.query(shardSchemaSql(shard, epoch))
      await c.query('COMMIT')
      await catalog.query('INSERT INTO shard_map (shard, server) VALUES ($1, $2)', [shard, servers[shard]])
      if (shard % 256 === 255) process.stderr.write(`  naive: ${shard + 1}/${naiveCount} schemas, ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
    }
    return {seconds: (performance.now() - started) / 1000, count: naiveCount}
  } finally {
    await Promise.all([...clients, catalog].map((c) => c.end()))
  }
}

const lab = await startTestLab({postgres: SERVERS})
try {
  process.stderr.write(`lab up (net ${lab.net}); feedops shards init of ${logical} over ${SERVERS} servers, batch ${batch}\n`)
  const ours = await feedopsInit(lab)
  if (!ours.result.complete) throw new Error('shards init did not complete')
  process.stderr.write(`naive baseline: one schema per transaction, ${naiveCount} schemas\n`)
  const naive = await naiveInit(lab)

  const oursRate = logical / ours.seconds
  const naiveRate = naive.count / naive.seconds
  const naiveFull = logical / naiveRate
  const rows = [
    ['feedops shards init', String(logical), ours.seconds.toFixed(1), oursRate.toFixed(0), '1.0×'],
    [
      `naive (1 schema/txn, serial)${naive.count < logical ? ` ×${(logical / naive.count).toFixed(0)} est.` : ''}`,
      String(naive.count),
      naive.seconds.toFixed(1) + (naive.count < logical ? ` (${naiveFull.toFixed(0)} for ${logical})` : ''),
      naiveRate.toFixed(0),
      `${(oursRate / naiveRate).toFixed(1)}× slower`,
    ],
  ]
  console.log(table(['WHAT', 'SCHEMAS', 'SECONDS', 'SCHEMAS/S', 'VS FEEDOPS'], rows))
  console.log(`\nfeedops: ${logical} schemas over ${SERVERS} servers in ${ours.seconds.toFixed(1)} s (target < 60 s): ${ours.seconds < 60 ? 'PASS' : 'FAIL'}`)
  console.log(`speed-up over the naive baseline: ${(oursRate / naiveRate).toFixed(1)}×`)

  const out = {
    when: new Date().toISOString(),
    servers: SERVERS,
    logical,
    batch,
    feedops: {seconds: ours.seconds, schemasPerSecond: oursRate, mapVersion: ours.result.version},
    naive: {schemas: naive.count, seconds: naive.seconds, schemasPerSecond: naiveRate, estimatedSecondsForAll: naiveFull},
    speedup: oursRate / naiveRate,
    targetSeconds: 60,
    pass: ours.seconds < 60,
  }
  const dir = path.join(repoRoot, 'test/bench/results')
  mkdirSync(dir, {recursive: true})
  writeFileSync(path.join(dir, 'shards-init.json'), JSON.stringify(out, null, 2) + '\n')
  console.log(`wrote ${path.relative(repoRoot, path.join(dir, 'shards-init.json'))}`)
} finally {
  await lab.stop()
}
