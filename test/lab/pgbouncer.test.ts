import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import pg from 'pg'

import {appConfigFrom, type AppConfig} from '../../app/config.js'
import {loadConfig} from '../../src/config/load.js'
import {labStatus, labUp} from '../../src/lab/index.js'
import {pgbouncerKeepsPrepared} from '../../src/lab/components/pgbouncer.js'
import {call, captureLogs, startApp, type RunningApp} from '../app/helpers.js'
import {startTestLab, type TestLab} from '../support/lab.js'

/** The feed app through PgBouncer (transaction pooling) on a lab whose `lab up` created the shards. */

async function bouncerStats(port: number, address: string): Promise<Map<string, number>> {
  // PgBouncer's admin console only speaks the simple query protocol.
  const client = new pg.Client({host: address, port, user: 'postgres', database: 'pgbouncer'})
  await client.connect()
  try {
    const r = await client.query<{database: string; total_xact_count: string}>({text: 'SHOW STATS', queryMode: 'simple'} as pg.QueryConfig)
    return new Map(r.rows.map((row) => [row.database, Number(row.total_xact_count)]))
  } finally {
    await client.end()
  }
}

describe('lab PgBouncer', {timeout: 300_000}, () => {
  let lab: TestLab
  let config: AppConfig
  let running: RunningApp
  const {stream, logs} = captureLogs()
  before(async () => {
    lab = await startTestLab({postgres: 1, pgbouncer: true, shards: true, redis: true, memcached: true})
    config = appConfigFrom(loadConfig({flag: lab.configFile}))
    running = await startApp(config, stream)
  })
  after(async () => {
    await running?.stop()
    await lab?.stop()
  })

  it('gives each shard server a direct url and a pooled one, and sets prepared statements for the installed PgBouncer', () => {
    const [server] = config.shards.servers
    assert.equal(server!.url, lab.layout.postgres[0]!.url)
    assert.equal(server!.pooledUrl, `postgres://postgres@127.${lab.net}.0.1:6433/feedops`)
    assert.equal(config.app.preparedStatements, pgbouncerKeepsPrepared())
  })

  it('serves users, follows, photos and the feed through PgBouncer', async () => {
    const before = await bouncerStats(6433, lab.layout.postgres[0]!.address)
    const made = []
    for (const name of ['pa', 'pb']) {
      const r = await call(running.url, 'POST', '/users', {body: {username: `${name}_${process.pid}`, name}})
      assert.equal(r.status, 201, JSON.stringify(r.body))
      made.push({id: r.body.user.id as string, token: r.body.token as string})
    }
    const [a, b] = made as [{id: string; token: string}, {id: string; token: string}]
    assert.equal((await call(running.url, 'PUT', `/users/${a.id}/following/${b.id}`, {token: a.token})).status, 200)
    const photos: string[] = []
    for (let i = 0; i < 3; i++) {
      const r = await call(running.url, 'POST', '/photos', {token: b.token, body: {caption: `p${i}`, s3Key: `k/${i}.jpg`}})
      assert.equal(r.status, 201, JSON.stringify(r.body))
      photos.push(r.body.photo.id)
    }
    // Twice: a second read plans the per-server query again, through whichever server connection comes.
    for (let i = 0; i < 2; i++) {
      const feed = await call(running.url, 'GET', `/feed/${a.id}`)
      assert.equal(feed.status, 200, JSON.stringify(feed.body))
      assert.deepEqual(feed.body.items.map((p: {id: string}) => p.id), [...photos].reverse())
    }
    const afterStats = await bouncerStats(6433, lab.layout.postgres[0]!.address)
    assert.ok(afterStats.get('feedops')! - (before.get('feedops') ?? 0) >= 6, 'the app did not go through PgBouncer')
    assert.doesNotMatch(logs.text(), /prepared statement .* does not exist/)
  })

  it('lab up again keeps every process and the shard map (no second shards init)', async () => {
    const pool = new pg.Pool({connectionString: config.shards.catalog})
    try {
      const version = async () => (await pool.query<{version: string}>('SELECT version FROM map_version')).rows[0]!.version
      const v1 = await version()
      const pids = (await labStatus(lab.dir)).processes.map((p) => p.pid)
      const again = await labUp({dir: lab.dir})
      assert.deepEqual(again.processes.map((p) => p.pid), pids)
      assert.ok(again.processes.some((p) => p.component === 'pgbouncer' && p.alive))
      assert.equal(await version(), v1)
    } finally {
      await pool.end()
    }
  })
})
