import assert from 'node:assert/strict'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, before, describe, it} from 'node:test'

import pg from 'pg'

import type {ShardMap} from '../../src/shards/catalog.js'
import {schemaName, shardOfUsername} from '../../src/shards/placement.js'
import {call, captureLogs, startApp, type RunningApp} from '../app/helpers.js'
import {
  assertNoCrash,
  captionsOn,
  LOGICAL,
  mapServer,
  shards,
  sql,
  startCli,
  startMoveLab,
  usersIn,
  waitUntil,
  type AppUser,
  type MoveLab,
} from './move-helpers.js'

/**
 * What a move refuses and where it must not hang, on one lab (3 Postgres servers; shard i starts on
 * pg(i mod 3 + 1), the catalog on pg1): a flip that comes late, servers out of replication workers, a
 * target schema the move did not make, a revert onto a copy that diverged, an open reader of the catalog,
 * an idle transaction on the source, a table beyond the shard DDL, and an app whose map is stale on every
 * route. Each scenario uses its own shards.
 */
describe('shards move guards', {timeout: 600_000}, () => {
  let ml: MoveLab
  let app: RunningApp
  let stale: RunningApp
  let users: Map<number, AppUser[]>
  const {stream} = captureLogs()
  const {stream: staleStream, logs: staleLogs} = captureLogs()

  before(async () => {
    ml = await startMoveLab({freezeLeaseMs: 2000, snapshotWaitS: 4})
    app = await startApp(ml.config, stream)
    stale = await startApp(ml.config, staleStream, {mapPollMs: 60_000})
    ;(stale.deps.maps as unknown as {subscriber?: {disconnect(): void}}).subscriber?.disconnect()
    users = await usersIn(app.url, [0, 3, 12, 13], 2, 'gd')
  })
  after(async () => {
    await stale?.stop()
    await app?.stop()
    await ml?.lab.stop()
  })

  const jobsOf = (shard: number) => sql<{id: number; status: string}>(ml.config.shards.catalog, 'SELECT id::int, status FROM shard_moves WHERE shard = $1', [shard])

  it('refuses a flip that would commit after the freeze lease, by the catalog\'s clock: the shard stays and takes writes', async () => {
    const shard = 0 // pg1 → pg2
    const cli = startCli(ml, ['move', String(shard), '--to', 'pg2'], {FEEDOPS_MOVE_PAUSE: 'before-flip:1000'})
    await cli.waitFor('paused at before-flip')
    // Holds the shard's map row: the flip's statement starts within the lease and waits here for 4 s.
    const holder = new pg.Client({connectionString: ml.config.shards.catalog})
    await holder.connect()
    await holder.query('BEGIN')
    await holder.query('SELECT 1 FROM shard_map WHERE shard = $1 FOR UPDATE', [shard])
    await sleep(4000)
    await holder.query('COMMIT')
    await holder.end()
    assert.equal(await cli.exited, 1, cli.stderr())
    assertNoCrash(cli.stderr(), 'move')
    assert.equal((await mapServer(ml, shard)).server, 'pg1', 'the late flip did not commit')
    const [job] = await jobsOf(shard)
    const listed = await shards(ml, ['moves', '--live'])
    const row = listed.json.jobs.find((j: {id: number}) => j.id === job!.id)
    assert.equal(row.status, 'failed')
    assert.match(row.error, /ran past its lease/)
    const write = await call(app.url, 'POST', '/photos', {token: users.get(shard)![0]!.token, body: {caption: 'lf-0', s3Key: 'p/lf.jpg'}})
    assert.equal(write.status, 201, JSON.stringify(write.body))
    assert.equal((await captionsOn(ml.url('pg1'), shard, 'lf')).get('lf-0'), 1)
    const reverted = await shards(ml, ['revert', String(shard)])
    assert.equal(reverted.code, 0, reverted.stderr + reverted.stdout)
  })

  it('preflight counts logical replication workers on both servers (reverse stream included) and leaves no job when short', async () => {
    // 16 enabled subscriptions (max_logical_replication_workers = 16) on pg3, streaming from slots that do not exist.
    const subs = Array.from({length: 16}, (_, i) => `filler_${i}`)
    for (const s of subs) {
      await sql(ml.url('pg3'), `CREATE SUBSCRIPTION ${s} CONNECTION '${ml.url('pg2')}' PUBLICATION nothing WITH (connect = false, slot_name = '${s}')`)
      await sql(ml.url('pg3'), `ALTER SUBSCRIPTION ${s} ENABLE`)
    }
    try {
      const [into, outOf] = await Promise.all([shards(ml, ['move', '1', '--to', 'pg3']), shards(ml, ['move', '2', '--to', 'pg1'])])
      for (const [r, shard] of [
        [into, 1],
        [outOf, 2],
      ] as const) {
        assert.equal(r.code, 1, r.stdout + r.stderr)
        assert.match(r.json.error, /pg3 has 0 free logical replication workers of 16 \(max_logical_replication_workers; 16 enabled subscriptions/)
        assert.doesNotMatch(r.json.error, /\.\./)
        assert.equal(r.json.discarded, true)
        assert.deepEqual(await jobsOf(shard), [], `no job is left for shard ${shard}`)
      }
    } finally {
      for (const s of subs) {
        await sql(ml.url('pg3'), `ALTER SUBSCRIPTION ${s} DISABLE`)
        await sql(ml.url('pg3'), `ALTER SUBSCRIPTION ${s} SET (slot_name = NONE)`)
        await sql(ml.url('pg3'), `DROP SUBSCRIPTION ${s}`)
      }
    }
  })

  it('a catch-up whose stream has no worker stops with an error saying so, instead of waiting out catchUpTimeoutS', async () => {
    const shard = 11 // pg3 → pg1
    const prepared = await shards(ml, ['move', String(shard), '--to', 'pg1', '--prepare'])
    assert.equal(prepared.code, 0, prepared.stderr + prepared.stdout)
    const sub = `feedops_move_${prepared.json.job.id}_fwd`
    await sql(ml.url('pg1'), `ALTER SUBSCRIPTION ${sub} DISABLE`)
    const started = performance.now()
    const stalled = await shards(ml, ['move', String(shard), '--to', 'pg1'])
    assert.equal(stalled.code, 1, stalled.stdout + stalled.stderr)
    assert.match(stalled.json.error, new RegExp(`The subscription ${sub} on pg1 has had no apply worker for \\d+ s`))
    assert.match(stalled.json.error, /max_logical_replication_workers/)
    assert.ok(performance.now() - started < 120_000, 'it gave up long before catchUpTimeoutS (600 s)')
    assert.equal((await mapServer(ml, shard)).server, 'pg3')
    const reverted = await shards(ml, ['revert', String(shard)])
    assert.equal(reverted.code, 0, reverted.stderr + reverted.stdout)
  })

  it('never drops a target schema the move did not make: after a reverted move, a hand-made one is named and kept', async () => {
    const shard = 5 // pg3 → pg2
    const s = schemaName(shard)
    const prepared = await shards(ml, ['move', String(shard), '--to', 'pg2', '--prepare'])
    assert.equal(prepared.code, 0, prepared.stderr + prepared.stdout)
    const reverted = await shards(ml, ['revert', String(shard)])
    assert.equal(reverted.code, 0, reverted.stderr + reverted.stdout)
    await sql(ml.url('pg2'), `CREATE SCHEMA ${s}; CREATE TABLE ${s}.mine (id int PRIMARY KEY); INSERT INTO ${s}.mine VALUES (1)`)
    const again = await shards(ml, ['move', String(shard), '--to', 'pg2', '--prepare'])
    assert.equal(again.code, 2, again.stdout + again.stderr)
    assert.match(again.json.error.message, new RegExp(`pg2 already holds a schema ${s} \\(1 table, with rows\\) that no move of shard ${shard} made`))
    assert.deepEqual(await sql(ml.url('pg2'), `SELECT id FROM ${s}.mine`), [{id: 1}], 'the hand-made schema and its row are still there')
    const doctor = await shards(ml, ['doctor', '--fix'])
    assert.ok(doctor.json.findings.some((f: {name: string; fixed?: boolean}) => f.name === s && !f.fixed), JSON.stringify(doctor.json.findings))
    assert.deepEqual(await sql(ml.url('pg2'), `SELECT id FROM ${s}.mine`), [{id: 1}], 'doctor --fix leaves it too')
    await sql(ml.url('pg2'), `DROP SCHEMA ${s} CASCADE`)
  })

  it('revert verifies the old copy like a cutover: it refuses a diverged copy naming the table, and --force moves back', async () => {
    const shard = 3 // pg1 → pg3, then back
    const moved = await shards(ml, ['move', String(shard), '--to', 'pg3'])
    assert.equal(moved.code, 0, moved.stderr + moved.stdout)
    // Behind the fence's back (replica role skips its trigger): the old copy no longer matches the home.
    await sql(ml.url('pg1'), `SET session_replication_role = replica; UPDATE "${schemaName(shard)}".users SET name = 'diverged' WHERE id = ${users.get(shard)![0]!.id}`)
    const refused = await shards(ml, ['revert', String(shard)])
    assert.equal(refused.code, 1, refused.stdout + refused.stderr)
    assert.match(refused.json.error.message, /old copy on pg1 differs from the shard's home pg3 in users/)
    assert.match(refused.json.error.fix, /--force/)
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg3', state: 'active'})
    const write = await call(app.url, 'POST', '/photos', {token: users.get(shard)![0]!.token, body: {caption: 'rv-0', s3Key: 'p/rv.jpg'}})
    assert.equal(write.status, 201, 'the shard takes writes on its home')
    const forced = await shards(ml, ['revert', String(shard), '--force'])
    assert.equal(forced.code, 0, forced.stdout + forced.stderr)
    assert.equal((await mapServer(ml, shard)).server, 'pg1')
  })

  it('`shards moves` and `shards map` do not wait on an open reader of the catalog', async () => {
    const reader = new pg.Client({connectionString: ml.config.shards.catalog})
    await reader.connect()
    try {
      await reader.query('BEGIN')
      await reader.query('SELECT count(*) FROM shard_map')
      await reader.query('SELECT count(*) FROM shard_moves')
      let done = false
      const both = Promise.all([shards(ml, ['moves']), shards(ml, ['map'])]).finally(() => (done = true))
      // While they run, no lock request may wait behind the reader (a migration's ALTER TABLE would, and
      // every reader of the map would queue behind it). Once one is seen the reader ends, so nothing hangs.
      const waited: string[] = []
      while (!done && waited.length === 0) {
        const rows = await sql<{what: string}>(
          ml.config.shards.catalog,
          "SELECT l.mode || ' on ' || l.relation::regclass::text AS what FROM pg_locks l WHERE NOT l.granted AND l.locktype = 'relation'",
        )
        waited.push(...rows.map((r) => r.what))
        if (waited.length > 0) await reader.query('COMMIT')
        else await sleep(50)
      }
      const [moves, map] = await both
      assert.deepEqual(waited, [], 'no lock request waited behind the open reader')
      assert.equal(moves.code, 0, moves.stdout + moves.stderr)
      assert.equal(map.code, 0, map.stdout + map.stderr)
    } finally {
      await reader.query('COMMIT').catch(() => undefined)
      await reader.end()
    }
  })

  it('an idle transaction on the source: the copy names it (pid, application, age) and gives up after its bound; Ctrl-C stops the wait', async () => {
    const shard = 6 // pg1 → pg2
    const idle = new pg.Client({connectionString: ml.url('pg1'), application_name: 'forgotten-psql'})
    await idle.connect()
    try {
      await idle.query('BEGIN')
      const [{pid}] = (await idle.query<{pid: number}>('SELECT pg_backend_pid() AS pid, txid_current()')).rows as [{pid: number}]
      const started = performance.now()
      const gaveUp = await shards(ml, ['move', String(shard), '--to', 'pg2'])
      const took = performance.now() - started
      assert.equal(gaveUp.code, 1, gaveUp.stdout + gaveUp.stderr)
      assert.match(gaveUp.json.error, new RegExp(`waited \\d+ s for transactions open on pg1 to end and gave up: pid ${pid} \\(application "forgotten-psql", idle in transaction for \\d+ s\\)`))
      assert.ok(took < 30_000, `gave up after ${took.toFixed(0)} ms`)
      // Again, interrupted while it waits: it stops at once (exit 130), not at the bound.
      const cli = startCli(ml, ['move', String(shard), '--to', 'pg2'])
      await waitUntil(
        'the copy to wait',
        async () => (await sql(ml.url('pg1'), "SELECT 1 FROM pg_stat_activity WHERE application_name = 'feedops move copy'")).length > 0,
        30_000,
      )
      const signalled = performance.now()
      cli.child.kill('SIGINT')
      assert.equal(await cli.exited, 130, cli.stderr())
      assert.ok(performance.now() - signalled < 3000, `stopped ${(performance.now() - signalled).toFixed(0)} ms after Ctrl-C`)
      assertNoCrash(cli.stderr(), 'move')
    } finally {
      await idle.query('ROLLBACK').catch(() => undefined)
      await idle.end()
    }
    const moved = await shards(ml, ['move', String(shard), '--to', 'pg2'])
    assert.equal(moved.code, 0, moved.stderr + moved.stdout)
  })

  it('moves a shard with a table beyond the shard DDL (serial primary key) and its rows', async () => {
    const shard = 9 // pg1 → pg3
    const s = schemaName(shard)
    await sql(ml.url('pg1'), `CREATE TABLE ${s}.extra (id serial PRIMARY KEY, note text NOT NULL DEFAULT 'n'); INSERT INTO ${s}.extra (note) SELECT 'x' || g FROM generate_series(1, 50) g`)
    const moved = await shards(ml, ['move', String(shard), '--to', 'pg3'])
    assert.equal(moved.code, 0, moved.stderr + moved.stdout)
    const extra = moved.json.facts.verify.tables.find((t: {table: string}) => t.table === 'extra')
    assert.ok(extra?.ok && extra.primaryRows === 50, JSON.stringify(extra))
    // Its sequence was carried past the copied ids: a new row on the new home does not collide.
    const [row] = await sql(ml.url('pg3'), `INSERT INTO ${s}.extra DEFAULT VALUES RETURNING id`)
    assert.equal(row.id, 51)
  })

  it('an app with a stale map: every route retries once with the reloaded map, over a fenced old copy and over a dropped one', async () => {
    const oldMap = structuredClone(stale.deps.maps.current()) as ShardMap
    // Re-stales the app before each request: it holds the map from before both moves.
    const restale = () => (stale.deps.maps as unknown as {install(m: ShardMap): void}).install(structuredClone(oldMap))
    const nameOn = (shard: number, tag: string) => {
      for (let i = 0; ; i++) if (shardOfUsername(`${tag}${i}`, LOGICAL) === shard) return `${tag}${i}`
    }
    const fenced = 13 // pg2 → pg3, old copy kept (fenced)
    const dropped = 12 // pg1 → pg2, completed (old copy dropped)
    for (const args of [['move', String(fenced), '--to', 'pg3'], ['move', String(dropped), '--to', 'pg2'], ['complete', String(dropped)]]) {
      const r = await shards(ml, args)
      assert.equal(r.code, 0, r.stderr + r.stdout)
    }
    const results: string[] = []
    const expect = async (what: string, status: number, req: () => Promise<{status: number; body: unknown}>) => {
      restale()
      assert.equal(stale.deps.maps.serverOf(fenced), 'pg2')
      const r = await req()
      results.push(`${what}: ${r.status}`)
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`)
      return r as {status: number; body: any}
    }
    const [a, a2] = users.get(fenced)!
    const [b, b2] = users.get(dropped)!
    // Over the fenced old copy: writes meet the fence.
    await expect('signup, claim on the fenced shard', 201, () => call(stale.url, 'POST', '/users', {body: {username: nameOn(fenced, 'fc'), name: 'f'}}))
    await expect('photo', 201, () => call(stale.url, 'POST', '/photos', {token: a!.token, body: {caption: 'st-0', s3Key: 'p/st.jpg'}}))
    await expect('follow', 200, () => call(stale.url, 'PUT', `/users/${a!.id}/following/${a2!.id}`, {token: a!.token}))
    await expect('unfollow', 200, () => call(stale.url, 'DELETE', `/users/${a!.id}/following/${a2!.id}`, {token: a!.token}))
    const revokedA = await expect('token revoke', 200, () => call(stale.url, 'DELETE', `/users/${a!.id}/tokens`, {token: a!.token}))
    assert.equal((await call(app.url, 'POST', '/photos', {token: a!.token, body: {caption: 'st-1', s3Key: 'p/st.jpg'}})).status, 401, 'the revoke landed on the home')
    assert.ok(revokedA.body.token)
    // Over the dropped copy: reads and writes meet a missing schema.
    const name = nameOn(dropped, 'dr')
    const signup = await expect('signup, claim on the dropped shard', 201, () => call(stale.url, 'POST', '/users', {body: {username: name, name: 'd'}}))
    await expect('user by name', 200, () => call(stale.url, 'GET', `/users/by-name/${name}`))
    await expect('user', 200, () => call(stale.url, 'GET', `/users/${b!.id}`))
    const photo = await expect('photo', 201, () => call(stale.url, 'POST', '/photos', {token: b!.token, body: {caption: 'st-2', s3Key: 'p/st.jpg'}}))
    await expect('photo read', 200, () => call(stale.url, 'GET', `/photos/${photo.body.photo.id}`))
    await expect('follow', 200, () => call(stale.url, 'PUT', `/users/${b2!.id}/following/${b!.id}`, {token: b2!.token}))
    const feed = await expect('feed', 200, () => call(stale.url, 'GET', `/feed/${b2!.id}`))
    assert.ok(feed.body.items.some((p: {id: string}) => p.id === photo.body.photo.id), 'the feed reads the moved shard')
    await expect('unfollow', 200, () => call(stale.url, 'DELETE', `/users/${b2!.id}/following/${b!.id}`, {token: b2!.token}))
    await expect('token revoke', 200, () => call(stale.url, 'DELETE', `/users/${b!.id}/tokens`, {token: b!.token}))
    assert.ok(signup.body.user.id)
    assert.doesNotMatch(staleLogs.text(), /"level":50/, 'no request failed')
  })
})
