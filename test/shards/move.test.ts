import assert from 'node:assert/strict'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, before, describe, it} from 'node:test'

import pg from 'pg'

import type {DataContext} from '../../app/data/context.js'
import {ShardMapCache} from '../../app/data/map-cache.js'
import {writeToShard} from '../../app/data/shard-write.js'
import {createLogger} from '../../app/logger.js'
import {readState} from '../../src/lab/state.js'
import {labUp} from '../../src/lab/index.js'
import {schemaName} from '../../src/shards/placement.js'
import {call, captureLogs, startApp, type RunningApp} from '../app/helpers.js'
import {runCli} from './helpers.js'
import {
  captionsOn,
  killServer,
  mapServer,
  moveObjects,
  shards,
  sql,
  startCli,
  startLoad,
  startMoveLab,
  usersIn,
  waitUntil,
  type AppUser,
  type MoveLab,
  type Write,
} from './move-helpers.js'

/**
 * Shard moves on a real lab (3 Postgres servers, Redis, Memcached, the app in-process), through the real
 * CLI. Shards are placed round robin: shard i starts on pg(i mod 3 + 1). Each scenario uses its own shard.
 */
describe('shards move', {timeout: 400_000}, () => {
  let ml: MoveLab
  let app: RunningApp
  /** An app whose map goes stale: its Redis subscription is cut and it polls the catalog every 10 s. */
  let stale: RunningApp
  let users: Map<number, AppUser[]>
  const {stream: staleStream, logs: staleLogs} = captureLogs()
  const {stream: appStream, logs: appLogs} = captureLogs()

  before(async () => {
    ml = await startMoveLab()
    app = await startApp(ml.config, appStream)
    stale = await startApp(ml.config, staleStream, {mapPollMs: 10_000})
    ;(stale.deps.maps as unknown as {subscriber?: {disconnect(): void}}).subscriber?.disconnect()
    users = await usersIn(app.url, [0, 3, 4, 5, 6, 8, 10], 2, 'mv')
  })
  after(async () => {
    await stale?.stop()
    await app?.stop()
    await ml?.lab.stop()
  })

  /** Every acknowledged write on `server` exactly once, and no write failed. */
  const assertAllOnce = async (writes: Write[], server: string, shard: number, tag: string) => {
    const failed = writes.filter((w) => w.status !== 201)
    const errors = [...appLogs.lines, ...staleLogs.lines].filter((l) => /"level":50/.test(l)).slice(0, 3)
    assert.deepEqual(failed.map((w) => w.status), [], `every write through the move succeeded; ${errors.join('\n')}`)
    const seen = await captionsOn(ml.url(server), shard, tag)
    const missing = writes.filter((w) => seen.get(w.caption) !== 1)
    assert.deepEqual(missing.map((w) => `${w.caption}: ${seen.get(w.caption) ?? 0}`), [], `each acknowledged write is on ${server} once`)
    return seen
  }

  it('moves a shard under steady writes through two apps (one with a stale map): nothing lost, ids keep sorting, then revert, move, complete', async () => {
    const shard = 0
    assert.equal((await mapServer(ml, shard)).server, 'pg1')
    const load = startLoad([app.url, stale.url], users.get(shard)!, {concurrency: 4, tag: 'a1'})
    const acked = (after = 0) => load.writes.filter((w) => w.status === 201 && w.startedAt > after).length
    await waitUntil('writes before the move', async () => acked() >= 20)
    const beforeMove = performance.now()
    const moved = await shards(ml, ['move', String(shard), '--to', 'pg2'])
    const afterMove = performance.now()
    assert.equal(moved.code, 0, moved.stderr + moved.stdout)
    assert.equal(moved.json.ok, true)
    assert.equal(moved.json.start, 'new')
    assert.deepEqual(
      moved.json.phases.map((p: {phase: string}) => p.phase),
      ['preflight', 'schema', 'copy', 'catch-up', 'verify', 'cutover', 'reverse'],
    )
    assert.ok(moved.json.facts.freezeMs < 1500, `writes held ${moved.json.facts.freezeMs} ms`)
    assert.ok(moved.json.facts.verify.ok)
    await waitUntil('writes after the move', async () => acked(afterMove) >= 20)
    const writes = await load.stop()
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg2', state: 'active'})
    const onTarget = await assertAllOnce(writes, 'pg2', shard, 'a1')
    // Ids made after the move sort after every id made before it.
    const after = writes.filter((w) => w.startedAt > afterMove)
    const maxIdBefore = writes.filter((w) => w.endedAt < beforeMove).reduce((m, w) => (BigInt(w.id!) > m ? BigInt(w.id!) : m), 0n)
    for (const w of after) assert.ok(BigInt(w.id!) > maxIdBefore, `id ${w.id} made after the move sorts after ${maxIdBefore}`)
    // The stale app wrote to the old copy, was refused by its fence, reloaded the map and wrote to pg2.
    assert.match(staleLogs.text(), /write refused by a fence/)
    // The old copy (kept in sync by reverse replication) holds nothing the new home lacks.
    await waitUntil('reverse replication', async () => (await captionsOn(ml.url('pg1'), shard, 'a1')).size === onTarget.size)
    const onOld = await captionsOn(ml.url('pg1'), shard, 'a1')
    assert.deepEqual([...onOld.keys()].filter((c) => !onTarget.has(c)), [])

    const verified = await shards(ml, ['verify', String(shard)])
    assert.equal(verified.code, 0, verified.stdout)
    assert.deepEqual(
      verified.json.shards[0].copies.map((c: {server: string; role: string}) => `${c.server} ${c.role}`).sort(),
      ['pg1 old copy (fenced)', 'pg2 home'],
    )
    assert.ok(verified.json.shards[0].verify.ok)

    // A direct write to the old copy is refused by the server itself.
    await assert.rejects(sql(ml.url('pg1'), `DELETE FROM "${schemaName(shard)}".photos`), (err: {code?: string}) => err.code === 'FO001')

    // Revert under load: back to pg1, nothing lost.
    const load2 = startLoad([app.url, stale.url], users.get(shard)!, {concurrency: 4, tag: 'a2'})
    await waitUntil('writes before the revert', async () => load2.writes.length >= 20)
    const reverted = await shards(ml, ['revert', String(shard)])
    assert.equal(reverted.code, 0, reverted.stderr + reverted.stdout)
    assert.equal(reverted.json.movedBack, true)
    const afterRevert = performance.now()
    await waitUntil('writes after the revert', async () => load2.writes.filter((w) => w.startedAt > afterRevert).length >= 20)
    const writes2 = await load2.stop()
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg1', state: 'active'})
    await assertAllOnce(writes2, 'pg1', shard, 'a2')
    await assertAllOnce(writes, 'pg1', shard, 'a1')
    assert.deepEqual(await sql(ml.url('pg2'), "SELECT 1 FROM pg_namespace WHERE nspname = 's0000'"), [], 'the copy on pg2 is dropped')

    // Move again, then complete: the old copy and every stream are gone.
    const again = await shards(ml, ['move', String(shard), '--to', 'pg3'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    const completed = await shards(ml, ['complete', String(shard)])
    assert.equal(completed.code, 0, completed.stderr + completed.stdout)
    assert.equal(completed.json.status, 'completed')
    assert.deepEqual(await sql(ml.url('pg1'), "SELECT 1 FROM pg_namespace WHERE nspname = 's0000'"), [])
    for (const s of ['pg1', 'pg2', 'pg3']) assert.deepEqual(await moveObjects(ml.url(s)), [], `no slots, publications or subscriptions left on ${s}`)
    await assertAllOnce(writes2, 'pg3', shard, 'a2')
    const write = await call(app.url, 'POST', '/photos', {token: users.get(shard)![0]!.token, body: {caption: 'a3-0', s3Key: 'p/a3.jpg'}})
    assert.equal(write.status, 201)
    assert.equal((await captionsOn(ml.url('pg3'), shard, 'a3')).get('a3-0'), 1)
    const all = await shards(ml, ['verify', '--all'])
    assert.equal(all.code, 0, all.stdout)
    assert.equal(all.json.shards.length, 16)
  })

  it('survives kill -9 of the target Postgres during the copy: move again finishes it', async () => {
    const shard = 3 // pg1 → pg2
    const s = schemaName(shard)
    // Enough rows that the copy takes a while.
    await sql(
      ml.url('pg1'),
      `INSERT INTO "${s}".photos (id, user_id, s3_key) SELECT (1::bigint << 50) + g, $1::bigint, 'k' FROM generate_series(1, 100000) g`,
      [users.get(shard)![0]!.id],
    )
    const cli = startCli(ml, ['move', String(shard), '--to', 'pg2'])
    await waitUntil(
      'the copy to start',
      async () => (await sql(ml.url('pg2'), "SELECT 1 FROM pg_stat_progress_copy WHERE relid::regclass::text LIKE 's0003.%'").catch(() => [])).length > 0,
      60_000,
    )
    await killServer(readState(ml.lab.dir)!.processes.find((p) => p.name === 'pg2')!.pid!)
    const code = await cli.exited
    assert.equal(code, 1, cli.stderr())
    await labUp({dir: ml.lab.dir}) // restarts pg2 (crash recovery)
    const again = await shards(ml, ['move', String(shard), '--to', 'pg2'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    assert.notEqual(again.json.start, 'new')
    const photos = again.json.facts.verify.tables.find((t: {table: string}) => t.table === 'photos')
    assert.ok(photos.ok && photos.primaryRows >= 100000, JSON.stringify(photos))
    assert.equal((await mapServer(ml, shard)).server, 'pg2')
  })

  it('resumes after the CLI is killed during catch-up; a second run meanwhile is refused with exit 3', async () => {
    const shard = 4 // pg2 → pg3
    const cli = startCli(ml, ['move', String(shard), '--to', 'pg3'], {FEEDOPS_MOVE_PAUSE: 'catch-up'})
    await cli.waitFor('paused at catch-up')
    const [second, elsewhere] = await Promise.all([shards(ml, ['move', String(shard), '--to', 'pg3']), shards(ml, ['move', String(shard), '--to', 'pg1'])])
    assert.equal(second.code, 3, second.stdout + second.stderr)
    assert.match(second.json.error.message, /Another process is working on shard 4/)
    assert.equal(elsewhere.code, 3, elsewhere.stdout)
    cli.child.kill('SIGKILL')
    await cli.exited
    // doctor before the refused move: that one holds the shard's move lock for a moment before it refuses,
    // and a job whose lock is held is being worked on
    const doctor = await shards(ml, ['doctor'])
    assert.ok(doctor.json.findings.some((f: {kind: string}) => f.kind === 'job'), 'doctor sees the job nobody works on')
    // `moves` shows no job running with a dead owner: it marks it failed (resumable), and says so.
    const jobs = await shards(ml, ['moves', '--live'])
    const other = await shards(ml, ['move', String(shard), '--to', 'pg1'])
    const job = jobs.json.jobs.find((j: {shard: number}) => j.shard === shard)
    assert.deepEqual([job.phase, job.status], ['catch-up', 'failed'])
    assert.match(job.error, /its process \(.+:\d+\) is gone/)
    assert.deepEqual(jobs.json.orphaned.map((j: {id: number}) => j.id), [job.id])
    assert.equal(other.code, 2, other.stdout)
    assert.match(other.json.error.message, /already moving from pg2 to pg3/)
    const again = await shards(ml, ['move', String(shard), '--to', 'pg3'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    assert.equal(again.json.start, 'resumed')
    assert.match(again.json.startNote, /resuming at catch-up/)
    assert.equal((await mapServer(ml, shard)).server, 'pg3')
  })

  it('when the CLI dies after the freeze, the lease unfreezes the shard and lifts the fence; a held write succeeds; move again finishes', async () => {
    const shard = 5 // pg3 → pg1
    const user = users.get(shard)![0]!
    const cli = startCli(ml, ['move', String(shard), '--to', 'pg1'], {FEEDOPS_MOVE_PAUSE: 'frozen'})
    await cli.waitFor('paused at frozen')
    assert.equal((await mapServer(ml, shard)).state, 'frozen')
    const write = call(app.url, 'POST', '/photos', {token: user.token, body: {caption: 'e1-0', s3Key: 'p/e1.jpg'}})
    await sleep(100)
    cli.child.kill('SIGKILL')
    await cli.exited
    const w = await write
    assert.equal(w.status, 201, JSON.stringify(w.body))
    assert.ok(w.ms > 1000, `the write was held until the lease ran out (${w.ms.toFixed(0)} ms)`)
    assert.equal((await captionsOn(ml.url('pg3'), shard, 'e1')).get('e1-0'), 1, 'the held write landed on the old home')
    const again = await shards(ml, ['move', String(shard), '--to', 'pg1'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg1', state: 'active'})
    assert.equal((await captionsOn(ml.url('pg1'), shard, 'e1')).get('e1-0'), 1, 'and is on the new home after the move')
  })

  /** Whether the shard's fence row on `server` is permanent (null: no row). */
  const fenceOn = async (server: string, shard: number) =>
    (await sql<{permanent: boolean}>(ml.url(server), 'SELECT expires_at IS NULL AS permanent FROM feedops_move.fence WHERE schema_name = $1', [schemaName(shard)]))[0]
      ?.permanent ?? null

  it('when the CLI dies right after the flip, `moves` fences the old copy for good before its fence lapses; move again finishes', async () => {
    const shard = 8 // pg3 → pg1
    const cli = startCli(ml, ['move', String(shard), '--to', 'pg1'], {FEEDOPS_MOVE_PAUSE: 'flipped'})
    await cli.waitFor('paused at flipped')
    cli.child.kill('SIGKILL')
    await cli.exited
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg1', state: 'active'})
    assert.equal(await fenceOn('pg3', shard), false, 'the old copy is fenced, but only for a minute')
    const listed = await shards(ml, ['moves', '--live'])
    assert.equal(listed.code, 0, listed.stdout + listed.stderr)
    assert.deepEqual(
      listed.json.fences.filter((f: {shard: number}) => f.shard === shard).map((f: {server: string; action: string}) => `${f.server} ${f.action}`),
      ['pg3 fenced for good'],
    )
    assert.equal(await fenceOn('pg3', shard), true)
    await assert.rejects(sql(ml.url('pg3'), `DELETE FROM "${schemaName(shard)}".photos`), (err: {code?: string}) => err.code === 'FO001')
    const again = await shards(ml, ['move', String(shard), '--to', 'pg1'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    assert.match(again.json.startNote, /already points at pg1/)
    // Its freeze was not recorded by the run that died; the lease bounds it (the catalog refuses a later flip).
    assert.equal(again.json.facts.freezeMs, undefined)
    assert.equal(again.json.facts.freezeLeaseMs, 1500)
    const write = await call(app.url, 'POST', '/photos', {token: users.get(shard)![0]!.token, body: {caption: 'g1-0', s3Key: 'p/g1.jpg'}})
    assert.equal(write.status, 201)
    assert.equal((await captionsOn(ml.url('pg1'), shard, 'g1')).get('g1-0'), 1)
  })

  it('when revert dies right after switching back, the shard takes writes again within the lease, without a rerun; revert again finishes, with progress', async () => {
    const shard = 10 // pg2 → pg3, then back
    const moved = await shards(ml, ['move', String(shard), '--to', 'pg3'])
    assert.equal(moved.code, 0, moved.stderr + moved.stdout)
    const cli = startCli(ml, ['revert', String(shard)], {FEEDOPS_MOVE_PAUSE: 'flipped'})
    await cli.waitFor('paused at flipped')
    cli.child.kill('SIGKILL')
    await cli.exited
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg2', state: 'active'})
    // Without the lapsing fence the source's permanent one would refuse this write for good (503 after freezeWaitMs).
    const write = await call(app.url, 'POST', '/photos', {token: users.get(shard)![0]!.token, body: {caption: 'h1-0', s3Key: 'p/h1.jpg'}})
    assert.equal(write.status, 201, JSON.stringify(write.body))
    assert.equal((await captionsOn(ml.url('pg2'), shard, 'h1')).get('h1-0'), 1)
    const listed = await shards(ml, ['moves'])
    assert.ok(
      listed.json.fences.some((f: {shard: number; server: string; action: string}) => f.shard === shard && f.server === 'pg3' && f.action === 'fenced for good'),
      JSON.stringify(listed.json.fences),
    )
    assert.equal(await fenceOn('pg2', shard), null, 'the home has no fence left')
    const again = await runCli(['shards', 'revert', String(shard), '--config', ml.file], {timeout: 120_000})
    assert.equal(again.code, 0, again.stderr + again.stdout)
    assert.match(again.stderr, /revert: /, 'progress on stderr')
    assert.match(again.stdout, /is back on pg2/)
    assert.deepEqual(await sql(ml.url('pg3'), `SELECT 1 FROM pg_namespace WHERE nspname = '${schemaName(shard)}'`), [])
    for (const s of ['pg2', 'pg3']) assert.deepEqual((await moveObjects(ml.url(s))).filter((n) => n.includes(`_${moved.json.job.id}_`)), [])
  })

  it('a write that finds its copy dropped is retried where the map now points, also when another request reloaded the map first', async () => {
    const shard = 12 // pg1 → pg2, then complete: the copy on pg1 is dropped
    const log = createLogger({}, captureLogs().stream)
    const catalog = new pg.Pool({connectionString: ml.config.shards.catalog, max: 2})
    // A map cache of its own that learns of changes only when asked (no Redis, no poll to speak of).
    const maps = new ShardMapCache(catalog, {pollMs: 3_600_000, log})
    await maps.start()
    try {
      assert.equal(maps.serverOf(shard), 'pg1')
      for (const args of [['move', String(shard), '--to', 'pg2'], ['complete', String(shard)]]) {
        const r = await shards(ml, args)
        assert.equal(r.code, 0, r.stderr + r.stdout)
      }
      const tried: string[] = []
      // writeToShard needs only these of the app's data context.
      const ctx = {maps, freezeWaitMs: 3000, log} as unknown as DataContext
      await writeToShard(ctx, shard, async (server) => {
        tried.push(server)
        if (tried.length === 1) await maps.refresh() // another request reloads the map meanwhile
        return sql(ml.url(server), `INSERT INTO "${schemaName(shard)}".follows (follower_id, followee_id) VALUES (1, 2)`)
      })
      assert.deepEqual(tried, ['pg1', 'pg2'])
      assert.equal((await sql(ml.url('pg2'), `SELECT 1 FROM "${schemaName(shard)}".follows WHERE follower_id = 1 AND followee_id = 2`)).length, 1)
    } finally {
      await maps.stop()
      await catalog.end()
    }
  })

  it('stops before the cutover when verify finds a row changed on the target behind its back', async () => {
    const shard = 6 // pg1 → pg3
    const s = schemaName(shard)
    const prepared = await shards(ml, ['move', String(shard), '--to', 'pg3', '--prepare'])
    assert.equal(prepared.code, 0, prepared.stderr + prepared.stdout)
    assert.equal(prepared.json.prepared, true)
    const id = users.get(shard)![0]!.id
    await sql(ml.url('pg3'), `UPDATE "${s}".users SET name = 'tampered' WHERE id = $1`, [id])
    const moved = await shards(ml, ['move', String(shard), '--to', 'pg3'])
    assert.equal(moved.code, 1, moved.stdout)
    assert.equal(moved.json.ok, false)
    assert.match(moved.json.error, /Verify found the copies differ in users/)
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg1', state: 'active'})
    const [row] = await sql(ml.url('pg1'), `SELECT name FROM "${s}".users WHERE id = $1`, [id])
    assert.notEqual(row.name, 'tampered', 'the source is unchanged')
    const write = await call(app.url, 'POST', '/photos', {token: users.get(shard)![0]!.token, body: {caption: 'f1-0', s3Key: 'p/f1.jpg'}})
    assert.equal(write.status, 201, 'the shard still takes writes where it was')
    const reverted = await shards(ml, ['revert', String(shard)])
    assert.equal(reverted.code, 0, reverted.stderr + reverted.stdout)
    assert.equal(reverted.json.movedBack, false)
    assert.deepEqual(await sql(ml.url('pg3'), `SELECT 1 FROM pg_namespace WHERE nspname = '${s}'`), [])
  })

  it('doctor finds an orphaned slot and drops it with --fix, never touching a mapped schema', async () => {
    await sql(ml.url('pg2'), "SELECT pg_create_logical_replication_slot('feedops_move_999_fwd', 'pgoutput')")
    await sql(ml.url('pg2'), 'CREATE SCHEMA s0009') // shard 9 lives on pg1: a half-made copy
    const found = await shards(ml, ['doctor'])
    assert.equal(found.code, 1, found.stdout)
    const kinds = found.json.findings.map((f: {kind: string; server: string; name: string}) => `${f.kind} ${f.server} ${f.name}`)
    assert.ok(kinds.includes('slot pg2 feedops_move_999_fwd'), kinds.join(', '))
    assert.ok(kinds.includes('schema pg2 s0009'), kinds.join(', '))
    const fixed = await shards(ml, ['doctor', '--fix'])
    assert.equal(fixed.code, 0, fixed.stdout)
    assert.deepEqual(await sql(ml.url('pg2'), "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'feedops_move_999_fwd'"), [])
    assert.equal((await sql(ml.url('pg1'), "SELECT 1 FROM pg_namespace WHERE nspname = 's0009'")).length, 1, 'the mapped copy stays')
    const clean = await shards(ml, ['doctor'])
    assert.equal(clean.code, 0, clean.stdout)
    assert.deepEqual(clean.json.findings, [])
  })

  it('refuses bad input and changes nothing', async () => {
    const before = await sql(ml.config.shards.catalog, 'SELECT version FROM map_version')
    const cases: [string[], number, RegExp][] = [
      [['move', '99', '--to', 'pg2'], 2, /Shard 99 is not in the shard map/],
      [['move', '7', '--to', 'pg9'], 2, /Server "pg9" is not in env.shards.servers/],
      [['move', '7', '--to', 'pg2'], 2, /already on pg2/],
      [['complete', '7'], 3, /no move to complete/],
      [['verify', '99'], 2, /not in the shard map/],
      [['move', '7'], 2, /^Missing required flag --to\.$/],
    ]
    const runs = await Promise.all(cases.map(([args]) => shards(ml, args)))
    for (const [i, [args, code, message]] of cases.entries()) {
      const r = runs[i]!
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stdout}${r.stderr}`)
      assert.match(r.json.error.message, message)
    }
    assert.deepEqual(await sql(ml.config.shards.catalog, 'SELECT version FROM map_version'), before)
    assert.deepEqual(await sql(ml.config.shards.catalog, 'SELECT id FROM shard_moves WHERE shard = 7'), [])
  })
})
