import assert from 'node:assert/strict'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, afterEach, before, describe, it} from 'node:test'

import {schemaName} from '../../src/shards/placement.js'
import {call, captureLogs, startApp, type RunningApp} from '../app/helpers.js'
import {
  assertNoCrash,
  captionsOn,
  killPg,
  mapServer,
  refusedAfter,
  restartLab,
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
 * kill -9 of a move's source, target, the catalog's server and the CLI at the phases where each hurts,
 * under write load through the app (in this process: an unhandled 'error' event would end the test run).
 * After every kill: no stack trace, no job left running with a dead owner, the shard takes writes again
 * within the freeze lease plus the app's map reload (unless the killed server is its home), and every
 * acknowledged write is on the shard's final home exactly once. The lab's Postgres runs with
 * synchronous_commit = on. Shard i starts on pg(i mod 3 + 1); pg1 also holds the catalog.
 */
describe('shards move under kill -9', {timeout: 600_000}, () => {
  let ml: MoveLab
  let app: RunningApp
  let users: Map<number, AppUser[]>
  const {stream, logs} = captureLogs()
  /** Per kill: how long the shard's writes went unacknowledged after it (printed with the results). */
  const refused: Record<string, number> = {}
  const LEASE = 1500
  /** Loads of the running test, stopped whatever happens to it. */
  const loads: {stop(): Promise<Write[]>}[] = []
  const load = (shard: number, tag: string) => {
    const l = startLoad([app.url], users.get(shard)!, {concurrency: 2, tag})
    loads.push(l)
    return l
  }

  before(async () => {
    ml = await startMoveLab({freezeLeaseMs: LEASE})
    app = await startApp(ml.config, stream)
    users = await usersIn(app.url, [1, 2, 4, 7, 10], 2, 'kf')
  })
  afterEach(async () => {
    await Promise.all(loads.splice(0).map((l) => l.stop()))
  })
  after(async () => {
    console.log(`writes unacknowledged after each kill (ms): ${JSON.stringify(refused)}`)
    await app?.stop()
    await ml?.lab.stop()
  })

  const assertNoDeadOwner = async () => {
    const listed = await shards(ml, ['moves', '--live'])
    assert.equal(listed.code, 0, listed.stdout + listed.stderr)
    assert.deepEqual(
      listed.json.jobs.filter((j: {status: string}) => j.status === 'running'),
      [],
      'no job is left running once its process is gone',
    )
    return listed.json
  }

  /** Every acknowledged write of the load is on `server` exactly once. */
  const assertAcked = async (writes: Write[], server: string, shard: number, tag: string) => {
    const acked = writes.filter((w) => w.status === 201)
    assert.ok(acked.length > 0, 'some writes were acknowledged')
    const seen = await captionsOn(ml.url(server), shard, tag)
    const wrong = acked.filter((w) => seen.get(w.caption) !== 1).map((w) => `${w.caption}: ${seen.get(w.caption) ?? 0}`)
    assert.deepEqual(wrong, [], `each acknowledged write is on ${server} once`)
  }

  it('source killed during the copy: the CLI fails cleanly, the job is resumable, and move again finishes with every write', async () => {
    const shard = 1 // pg2 → pg3
    await sql(
      ml.url('pg2'),
      `INSERT INTO "${schemaName(shard)}".photos (id, user_id, s3_key) SELECT (1::bigint << 50) + g, $1::bigint, 'k' FROM generate_series(1, 150000) g`,
      [users.get(shard)![0]!.id],
    )
    const writesLoad = load(shard, 'k1')
    const cli = startCli(ml, ['move', String(shard), '--to', 'pg3'])
    await waitUntil(
      'the copy to start',
      async () => (await sql(ml.url('pg3'), "SELECT 1 FROM pg_stat_progress_copy WHERE relid::regclass::text LIKE 's0001.%'").catch(() => [])).length > 0,
      60_000,
    )
    await killPg(ml, 'pg2')
    assert.equal(await cli.exited, 1, cli.stderr())
    assertNoCrash(cli.stderr(), 'move')
    await restartLab(ml)
    const restartedAt = performance.now()
    await waitUntil('a write after the restart', async () => refusedAfter(writesLoad.writes, restartedAt) < Infinity, 20_000)
    const listed = await assertNoDeadOwner()
    assert.ok(listed.jobs.some((j: {shard: number; status: string}) => j.shard === shard && j.status === 'failed'), JSON.stringify(listed.jobs))
    const again = await shards(ml, ['move', String(shard), '--to', 'pg3'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    const writes = await writesLoad.stop()
    await assertAcked(writes, 'pg3', shard, 'k1')
  })

  it('target killed during the copy: the CLI fails at once with one sentence, the shard keeps serving from its source, and move again finishes', async () => {
    const shard = 10 // pg2 → pg3
    await sql(
      ml.url('pg2'),
      `INSERT INTO "${schemaName(shard)}".photos (id, user_id, s3_key) SELECT (1::bigint << 50) + g, $1::bigint, 'k' FROM generate_series(1, 300000) g`,
      [users.get(shard)![0]!.id],
    )
    const writesLoad = load(shard, 'k5')
    const cli = startCli(ml, ['move', String(shard), '--to', 'pg3'])
    await waitUntil(
      'the copy to start',
      async () => (await sql(ml.url('pg3'), "SELECT 1 FROM pg_stat_progress_copy WHERE relid::regclass::text LIKE 's0010.%'").catch(() => [])).length > 0,
      60_000,
    )
    const killedAt = performance.now()
    // As an operator's `kill -9` of the postmaster: its backends outlive it for a moment (killed below).
    const rest = await killPg(ml, 'pg3', true)
    // A bound, not a hang: the COPY into the dead target fails, and so does everything after it at once.
    const code = await Promise.race([cli.exited, sleep(30_000).then(() => 'still running after 30 s')])
    if (code !== 1) cli.child.kill('SIGKILL')
    await rest()
    assert.equal(code, 1, cli.stderr())
    refused['target during the copy (exit)'] = Math.round(performance.now() - killedAt)
    assertNoCrash(cli.stderr(), 'move')
    const said = JSON.parse(cli.stdout()) as {ok: boolean; error: string; job: {status: string}}
    assert.equal(said.ok, false)
    assert.match(said.error, /^The copy lost its connection to the target, pg3 \([^\n]+\); the shard still serves from its source; once pg3 is back, run `move` again$/)
    assert.equal(said.job.status, 'failed')
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg2', state: 'active'}, 'the shard stays on its source')
    await waitUntil('a write after the kill', async () => refusedAfter(writesLoad.writes, killedAt) < Infinity, 10_000)
    refused['target during the copy'] = refusedAfter(writesLoad.writes, killedAt)
    await restartLab(ml)
    const listed = await assertNoDeadOwner()
    assert.ok(listed.jobs.some((j: {shard: number; status: string}) => j.shard === shard && j.status === 'failed'), JSON.stringify(listed.jobs))
    const again = await shards(ml, ['move', String(shard), '--to', 'pg3'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    await sleep(200)
    const writes = await writesLoad.stop()
    await assertAcked(writes, 'pg3', shard, 'k5')
  })

  it('target killed while the shard is frozen: the cutover gives up and thaws it at once; move again finishes', async () => {
    const shard = 2 // pg3 → pg2
    const writesLoad = load(shard, 'k2')
    await waitUntil('writes before the move', async () => writesLoad.writes.some((w) => w.status === 201))
    const cli = startCli(ml, ['move', String(shard), '--to', 'pg2'], {FEEDOPS_MOVE_PAUSE: 'frozen:300'})
    await cli.waitFor('paused at frozen')
    const killedAt = performance.now()
    await killPg(ml, 'pg2')
    assert.equal(await cli.exited, 1, cli.stderr())
    assertNoCrash(cli.stderr(), 'move')
    await waitUntil('a write after the kill', async () => refusedAfter(writesLoad.writes, killedAt) < Infinity, 10_000)
    refused['target at cutover'] = refusedAfter(writesLoad.writes, killedAt)
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg3', state: 'active'})
    await restartLab(ml)
    await assertNoDeadOwner()
    const again = await shards(ml, ['move', String(shard), '--to', 'pg2'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    await sleep(200)
    const writes = await writesLoad.stop()
    await assertAcked(writes, 'pg2', shard, 'k2')
    assert.ok(refused['target at cutover']! < LEASE + 1000, `writes were held ${refused['target at cutover']} ms`)
  })

  it("catalog's server killed during the cutover: no crash, the shard takes writes again within the lease, move again finishes", async () => {
    const shard = 7 // pg2 → pg3; the catalog is on pg1
    const writesLoad = load(shard, 'k3')
    await waitUntil('writes before the move', async () => writesLoad.writes.some((w) => w.status === 201))
    const cli = startCli(ml, ['move', String(shard), '--to', 'pg3'], {FEEDOPS_MOVE_PAUSE: 'before-flip:300'})
    await cli.waitFor('paused at before-flip')
    const killedAt = performance.now()
    await killPg(ml, 'pg1')
    assert.equal(await cli.exited, 1, cli.stderr())
    assertNoCrash(cli.stderr(), 'move')
    // The app keeps its last map (frozen, with the lease's end): writes wait out the lease, then go to pg2.
    await waitUntil('a write after the kill', async () => refusedAfter(writesLoad.writes, killedAt) < Infinity, 10_000)
    refused['catalog at cutover'] = refusedAfter(writesLoad.writes, killedAt)
    await restartLab(ml)
    await assertNoDeadOwner()
    const again = await shards(ml, ['move', String(shard), '--to', 'pg3'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    await sleep(200)
    const writes = await writesLoad.stop()
    await assertAcked(writes, 'pg3', shard, 'k3')
    assert.ok(refused['catalog at cutover']! < LEASE + 1500, `writes were held ${refused['catalog at cutover']} ms`)
  })

  it('CLI killed between the fence and the flip: writes resume within the lease (not a minute); moves lists and lifts the fence; move again finishes', async () => {
    const shard = 4 // pg2 → pg1
    const writesLoad = load(shard, 'k4')
    await waitUntil('writes before the move', async () => writesLoad.writes.some((w) => w.status === 201))
    const cli = startCli(ml, ['move', String(shard), '--to', 'pg1'], {FEEDOPS_MOVE_PAUSE: 'before-flip'})
    await cli.waitFor('paused at before-flip')
    const killedAt = performance.now()
    cli.child.kill('SIGKILL')
    await cli.exited
    await waitUntil('a write after the kill', async () => refusedAfter(writesLoad.writes, killedAt) < Infinity, 10_000)
    refused['CLI before the flip'] = refusedAfter(writesLoad.writes, killedAt)
    assert.ok(refused['CLI before the flip']! < LEASE + 1000, `writes were held ${refused['CLI before the flip']} ms`)
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg2', state: 'frozen'}, 'the map row keeps its lapsed freeze until a command thaws it')
    const listed = await assertNoDeadOwner()
    assert.deepEqual(
      listed.fences.filter((f: {shard: number}) => f.shard === shard).map((f: {server: string; action: string}) => `${f.server} ${f.action}`),
      ['pg2 lifted'],
    )
    assert.deepEqual(await sql(ml.url('pg2'), 'SELECT 1 FROM feedops_move.fence WHERE schema_name = $1', [schemaName(shard)]), [])
    const again = await shards(ml, ['move', String(shard), '--to', 'pg1'])
    assert.equal(again.code, 0, again.stderr + again.stdout)
    await sleep(200)
    const writes = await writesLoad.stop()
    await assertAcked(writes, 'pg1', shard, 'k4')
  })

  it("the app survives its catalog's server being killed during signups, with no move running", async () => {
    let stop = false
    const statuses: number[] = []
    // Several at once, so that catalog sessions are checked out (between their queries) when it dies.
    const signups = Promise.all(
      Array.from({length: 8}, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const r = await call(app.url, 'POST', '/users', {body: {username: `kc_${process.pid}_${w}_${i}`, name: 'k'}}).catch(() => ({status: 0}))
          statuses.push(r.status)
          if (r.status !== 201) await sleep(20)
        }
      }),
    )
    try {
      await waitUntil('signups', async () => statuses.filter((s) => s === 201).length >= 5)
      await killPg(ml, 'pg1')
      await sleep(500)
      await restartLab(ml)
      const n = statuses.length
      await waitUntil('signups after the restart', async () => statuses.slice(n).some((s) => s === 201), 20_000)
    } finally {
      stop = true
      await signups
    }
    assert.ok(statuses.every((s) => s === 201 || s >= 500), `answers: ${[...new Set(statuses)].join(', ')}`)
    assert.equal((await call(app.url, 'GET', '/healthz')).status, 200, 'the app still answers')
    assert.doesNotMatch(logs.text(), /Unhandled 'error' event/)
  })
})
