import assert from 'node:assert/strict'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, before, describe, it} from 'node:test'

import {readState} from '../../src/lab/state.js'
import {labUp} from '../../src/lab/index.js'
import {schemaName} from '../../src/shards/placement.js'
import {call, captureLogs, startApp, type RunningApp} from '../app/helpers.js'
import {
  captionsOn,
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

  before(async () => {
    ml = await startMoveLab()
    app = await startApp(ml.config, captureLogs().stream)
    stale = await startApp(ml.config, staleStream, {mapPollMs: 10_000})
    ;(stale.deps.maps as unknown as {subscriber?: {disconnect(): void}}).subscriber?.disconnect()
    users = await usersIn(app.url, [0, 3, 4, 5, 6], 2, 'mv')
  })
  after(async () => {
    await stale?.stop()
    await app?.stop()
    await ml?.lab.stop()
  })

  /** Every acknowledged write on `server` exactly once, and no write failed. */
  const assertAllOnce = async (writes: Write[], server: string, shard: number, tag: string) => {
    const failed = writes.filter((w) => w.status !== 201)
    assert.deepEqual(failed.map((w) => w.status), [], 'every write through the move succeeded')
    const seen = await captionsOn(ml.url(server), shard, tag)
    const missing = writes.filter((w) => seen.get(w.caption) !== 1)
    assert.deepEqual(missing.map((w) => `${w.caption}: ${seen.get(w.caption) ?? 0}`), [], `each acknowledged write is on ${server} once`)
    return seen
  }

  it('moves a shard under steady writes through two apps (one with a stale map): nothing lost, ids keep sorting, then revert, move, complete', async () => {
    const shard = 0
    assert.equal((await mapServer(ml, shard)).server, 'pg1')
    const load = startLoad([app.url, stale.url], users.get(shard)!, {concurrency: 4, tag: 'a1'})
    await sleep(300)
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
    await sleep(300)
    const writes = await load.stop()
    assert.deepEqual(await mapServer(ml, shard), {server: 'pg2', state: 'active'})
    const onTarget = await assertAllOnce(writes, 'pg2', shard, 'a1')
    // Ids made after the move sort after every id made before it.
    const after = writes.filter((w) => w.startedAt > afterMove)
    assert.ok(after.length > 0 && writes.some((w) => w.endedAt < beforeMove))
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
    await sleep(200)
    const reverted = await shards(ml, ['revert', String(shard)])
    assert.equal(reverted.code, 0, reverted.stderr + reverted.stdout)
    assert.equal(reverted.json.movedBack, true)
    await sleep(200)
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

  it('refuses bad input and changes nothing', async () => {
    const before = await sql(ml.config.shards.catalog, 'SELECT version FROM map_version')
    const cases: [string[], number, RegExp][] = [
      [['move', '99', '--to', 'pg2'], 2, /Shard 99 is not in the shard map/],
      [['move', '7', '--to', 'pg9'], 2, /Server "pg9" is not in env.shards.servers/],
      [['move', '7', '--to', 'pg2'], 2, /already on pg2/],
      [['complete', '7'], 3, /no move to complete/],
      [['verify', '99'], 2, /not in the shard map/],
    ]
    for (const [args, code, message] of cases) {
      const r = await shards(ml, args)
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stdout}${r.stderr}`)
      assert.match(r.json.error.message, message)
    }
    assert.deepEqual(await sql(ml.config.shards.catalog, 'SELECT version FROM map_version'), before)
    assert.deepEqual(await sql(ml.config.shards.catalog, 'SELECT id FROM shard_moves WHERE shard = 7'), [])
  })
})
