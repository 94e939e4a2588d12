import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {after, before, describe, it} from 'node:test'

import {SHARD_TABLES} from '../../src/shards/ddl.js'
import type {InitResult} from '../../src/shards/init.js'
import type {MapReport} from '../../src/shards/map-report.js'
import {schemaName} from '../../src/shards/placement.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import {cli, freshShardsConfig, repoRoot, runCli, serverUrl, shardSchemas, waitForNoBackends, withClient} from './helpers.js'

async function catalogTables(url: string): Promise<string[]> {
  return withClient(url, async (c) => (await c.query<{t: string}>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'")).rows.map((r) => r.t))
}

async function mapRows(url: string): Promise<{shard: number; server: string; state: string}[]> {
  return withClient(url, async (c) => (await c.query('SELECT shard, server, state FROM shard_map ORDER BY shard')).rows)
}

describe('shards init and shards map (through the CLI, on 2 lab Postgres servers)', () => {
  let lab: TestLab
  const labCatalog = () => serverUrl(lab, 1, 'feedops_catalog')

  before(async () => {
    lab = await startTestLab({postgres: 2})
  })
  after(async () => {
    await lab?.stop()
  })

  it('rejects --logical 0 and 9000 before touching anything', async () => {
    for (const bad of ['0', '9000']) {
      const r = await runCli(['shards', 'init', '--config', lab.configFile, '--logical', bad])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, new RegExp(`^Error: --logical ${bad} is out of range.*\\nFix: `))
    }
    assert.deepEqual(await catalogTables(labCatalog()), [])
  })

  it('rejects an unreachable server by name before anything is created', async () => {
    const cfg = await freshShardsConfig(lab, 'unreach', {
      servers: 2,
      logical: 8,
      extraServers: [{name: 'pg9', url: `postgres://postgres@127.${lab.net}.0.1:5499/feedops`}],
    })
    const r = await runCli(['shards', 'init', '--config', cfg.file])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /Cannot reach Postgres server pg9 \(127\.\d+\.0\.1:5499\/feedops\).*Nothing was changed/)
    assert.doesNotMatch(r.stderr, /postgres@/, 'no credentials in output')
    assert.deepEqual(await catalogTables(cfg.catalog), [])
    for (const s of cfg.servers) assert.deepEqual(await shardSchemas(s.url), [])
  })

  it('creates the catalog and the lab config’s 64 schemas spread round-robin, with the map', async () => {
    const r = await runCli(['shards', 'init', '--config', lab.configFile, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const result = JSON.parse(r.stdout) as InitResult
    assert.equal(result.logical, 64)
    assert.equal(result.created, 64)
    assert.equal(result.existing, 0)
    assert.equal(result.complete, true)
    assert.deepEqual(
      result.servers.map((s) => [s.server, s.shards, s.created]),
      [['pg1', 32, 32], ['pg2', 32, 32]],
    )
    const on1 = await shardSchemas(serverUrl(lab, 1, 'feedops'))
    const on2 = await shardSchemas(serverUrl(lab, 2, 'feedops'))
    assert.deepEqual(on1, Array.from({length: 32}, (_, i) => schemaName(i * 2)))
    assert.deepEqual(on2, Array.from({length: 32}, (_, i) => schemaName(i * 2 + 1)))
    const map = await mapRows(labCatalog())
    assert.equal(map.length, 64)
    assert.ok(map.every((m) => m.state === 'active' && m.server === (m.shard % 2 === 0 ? 'pg1' : 'pg2')))
    assert.ok(result.version > 0)
    // Every schema has its tables and its own next_id().
    await withClient(serverUrl(lab, 2, 'feedops'), async (c) => {
      const t = await c.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname ~ '^s[0-9]{4}$'")
      assert.equal(t.rows[0].n, 32 * SHARD_TABLES.length)
      const id = await c.query('SELECT s0063.next_id()::text AS id')
      assert.equal(Number((BigInt(id.rows[0].id) >> 10n) & 8191n), 63)
    })
  })

  it('run again: creates nothing twice, and the map version stays', async () => {
    const before = await withClient(labCatalog(), async (c) => (await c.query('SELECT version FROM map_version')).rows[0].version)
    const r = await runCli(['shards', 'init', '--config', lab.configFile, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const result = JSON.parse(r.stdout) as InitResult
    assert.equal(result.created, 0)
    assert.equal(result.existing, 64)
    assert.equal(String(result.version), String(before))
    assert.equal((await shardSchemas(serverUrl(lab, 1, 'feedops'))).length, 32)
  })

  it('a different --logical for an existing catalog is refused', async () => {
    const r = await runCli(['shards', 'init', '--config', lab.configFile, '--logical', '128'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /created for 64 logical shards, not 128/)
    assert.equal((await mapRows(labCatalog())).length, 64)
  })

  it('shards map shows per server the shards, states, rows and bytes, and the version (text, --exact, --json)', async () => {
    await withClient(serverUrl(lab, 1, 'feedops'), async (c) => {
      await c.query("INSERT INTO s0000.users (id, username) SELECT g, 'u' || g FROM generate_series(1, 250) g")
      await c.query("INSERT INTO s0002.users (id, username) VALUES (1, 'x')")
      await c.query("INSERT INTO s0000.photos (user_id, s3_key) SELECT 1, 'p' || g FROM generate_series(1, 40) g")
    })
    await withClient(labCatalog(), (c) => c.query("UPDATE shard_map SET state = 'frozen' WHERE shard = 3"))

    const text = await runCli(['shards', 'map', '--config', lab.configFile, '--exact'])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /^SERVER\s+SHARDS\s+ACTIVE\s+FROZEN\s+MOVING\s+ROWS\s+BYTES/m)
    assert.match(text.stdout, /^pg1\s+32\s+32\s+0\s+0\s+291\s+[\d.]+ [kM]B/m)
    assert.match(text.stdout, /^pg2\s+32\s+31\s+1\s+0\s+0\s+[\d.]+ [kM]B/m)
    assert.match(text.stdout, /map version \d+; 64 logical shards; rows exact/)

    const json = await runCli(['shards', 'map', '--config', lab.configFile, '--json'])
    assert.equal(json.code, 0, json.stderr)
    const report = JSON.parse(json.stdout) as MapReport
    assert.equal(report.logical, 64)
    assert.equal(report.mapped, 64)
    assert.equal(report.exact, false)
    assert.equal(report.shards.length, 64)
    const pg1 = report.servers.find((s) => s.server === 'pg1')!
    assert.equal(pg1.shards, 32)
    assert.ok(pg1.bytes! > 0)
    assert.equal(typeof pg1.rows, 'number')
    assert.deepEqual(report.servers.find((s) => s.server === 'pg2')!.states, {active: 31, frozen: 1, moving: 0})
  })

  it('shards map before any init: one clear error naming the fix, exit 2', async () => {
    const cfg = await freshShardsConfig(lab, 'noinit', {servers: 1, logical: 8})
    const r = await runCli(['shards', 'map', '--config', cfg.file])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /shard catalog does not exist yet/)
    assert.match(r.stderr, /feedops shards init/)
    assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/, 'no stack trace')
    assert.equal(r.stdout, '')
  })

  it('places shards by weight', async () => {
    const cfg = await freshShardsConfig(lab, 'weighted', {servers: 2, logical: 16, weights: [3, 1]})
    const r = await runCli(['shards', 'init', '--config', cfg.file, '--json', '--batch', '5'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal((await shardSchemas(cfg.servers[0]!.url)).length, 12)
    assert.equal((await shardSchemas(cfg.servers[1]!.url)).length, 4)
  })

  it('killed half-way (SIGKILL), a second run finishes the job: all schemas, a complete and consistent map', async () => {
    const logical = 256
    const cfg = await freshShardsConfig(lab, 'killed', {servers: 2, logical})
    const child = spawn(process.execPath, [cli, 'shards', 'init', '--config', cfg.file, '--batch', '2'], {cwd: repoRoot, stdio: 'ignore'})
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
    let done = 0
    for (let i = 0; i < 600 && done < 20; i++) {
      await new Promise((r) => setTimeout(r, 25))
      done = await withClient(cfg.catalog, async (c) => {
        const t = await c.query("SELECT to_regclass('public.shard_init') IS NOT NULL AS ok")
        if (!t.rows[0].ok) return 0
        return (await c.query('SELECT count(*)::int AS n FROM shard_init WHERE created_at IS NOT NULL')).rows[0].n as number
      }).catch(() => 0)
    }
    child.kill('SIGKILL')
    await exited
    for (const url of [cfg.catalog, ...cfg.servers.map((s) => s.url)]) await waitForNoBackends(url)
    const partial = (await shardSchemas(cfg.servers[0]!.url)).length + (await shardSchemas(cfg.servers[1]!.url)).length
    assert.ok(partial >= 20 && partial < logical, `killed with ${partial} schemas made`)
    const mappedBefore = (await mapRows(cfg.catalog)).length
    assert.ok(mappedBefore < logical)

    const r = await runCli(['shards', 'init', '--config', cfg.file, '--json'])
    assert.equal(r.code, 0, r.stderr)
    const result = JSON.parse(r.stdout) as InitResult
    assert.equal(result.complete, true)
    assert.equal(result.created + result.existing, logical)
    assert.ok(result.existing >= mappedBefore)
    assert.equal(result.created, logical - partial, 'the second run created exactly the missing schemas')

    const map = await mapRows(cfg.catalog)
    assert.deepEqual(map.map((m) => m.shard), Array.from({length: logical}, (_, i) => i))
    for (const [i, s] of cfg.servers.entries()) {
      const schemas = await shardSchemas(s.url)
      const expected = map.filter((m) => m.server === s.name).map((m) => schemaName(m.shard))
      assert.deepEqual(schemas, expected, `${s.name} holds exactly its mapped shards`)
      assert.equal(schemas.length, logical / 2, `pg${i + 1}`)
      await withClient(s.url, async (c) => {
        const t = await c.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname ~ '^s[0-9]{4}$'")
        assert.equal(t.rows[0].n, (logical / 2) * SHARD_TABLES.length)
      })
    }
    const again = await runCli(['shards', 'init', '--config', cfg.file, '--json'])
    assert.equal((JSON.parse(again.stdout) as InitResult).created, 0)
  })
})
