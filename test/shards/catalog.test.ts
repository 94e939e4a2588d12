import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import pg from 'pg'

import {MapVersionConflict, ensureCatalog, nextUserId, readMapVersion, readShardMap, updateShards} from '../../src/shards/catalog.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import {serverUrl} from './helpers.js'

describe('catalog: the shard map with compare-and-swap', () => {
  let lab: TestLab
  let pool: pg.Pool

  before(async () => {
    lab = await startTestLab({postgres: 1})
    pool = new pg.Pool({connectionString: serverUrl(lab, 1, 'feedops_catalog'), max: 6})
    pool.on('error', () => undefined) // an idle client seeing the lab stop must not crash the file
    const c = await pool.connect()
    try {
      await ensureCatalog(c)
      await ensureCatalog(c) // idempotent
      await c.query("INSERT INTO catalog_info (logical, epoch) VALUES (4, '2011-01-01T00:00:00Z')")
      await c.query("INSERT INTO shard_map (shard, server) VALUES (0, 'pg1'), (1, 'pg2'), (2, 'pg1'), (3, 'pg2')")
    } finally {
      c.release()
    }
  })
  after(async () => {
    await pool?.end()
    await lab?.stop()
  })

  it('reads the map and its version', async () => {
    const map = await readShardMap(pool)
    assert.equal(map.logical, 4)
    assert.equal(map.version, 0)
    assert.deepEqual(map.shards[1], {shard: 1, server: 'pg2', state: 'active'})
    assert.equal(await readMapVersion(pool), 0)
  })

  it('applies a change at the expected version and bumps the version', async () => {
    const c = await pool.connect()
    try {
      const map = await updateShards(c, 0, [{shard: 2, state: 'frozen'}, {shard: 3, server: 'pg3'}])
      assert.equal(map.version, 1)
      assert.deepEqual(map.shards[2], {shard: 2, server: 'pg1', state: 'frozen'})
      assert.deepEqual(map.shards[3], {shard: 3, server: 'pg3', state: 'active'})
      assert.equal(await readMapVersion(pool), 1)
    } finally {
      c.release()
    }
  })

  it('two concurrent updates with the same expected version: one wins, one throws MapVersionConflict', async () => {
    const version = await readMapVersion(pool)
    const [a, b] = await Promise.all([pool.connect(), pool.connect()])
    try {
      // Hold the version row in a, so b's update really runs at the same time and waits on it.
      const results = await Promise.allSettled([
        updateShards(a, version, [{shard: 0, state: 'moving'}]),
        updateShards(b, version, [{shard: 0, server: 'pg9'}]),
      ])
      const won = results.filter((r) => r.status === 'fulfilled')
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      assert.equal(won.length, 1)
      assert.equal(lost.length, 1)
      assert.ok(lost[0]!.reason instanceof MapVersionConflict)
      assert.equal((lost[0]!.reason as MapVersionConflict).expected, version)
      assert.equal((lost[0]!.reason as MapVersionConflict).actual, version + 1)
      const map = await readShardMap(pool)
      assert.equal(map.version, version + 1)
      // Exactly one of the two changes is in the map, never both.
      const s0 = map.shards[0]!
      assert.ok((s0.state === 'moving' && s0.server === 'pg1') || (s0.state === 'active' && s0.server === 'pg9'), JSON.stringify(s0))
    } finally {
      a.release()
      b.release()
    }
  })

  it('a stale version conflicts and changes nothing; an unknown shard rolls the whole change back', async () => {
    const c = await pool.connect()
    try {
      const before = await readShardMap(pool)
      await assert.rejects(updateShards(c, before.version - 1, [{shard: 1, state: 'frozen'}]), MapVersionConflict)
      await assert.rejects(updateShards(c, before.version, [{shard: 1, state: 'frozen'}, {shard: 99, state: 'frozen'}]), /not in the shard map/)
      await assert.rejects(updateShards(c, before.version, [{shard: 1, state: 'gone' as 'active'}]), /Unknown shard state/)
      assert.deepEqual(await readShardMap(pool), before)
      // The connection is usable (no transaction left open).
      const after = await updateShards(c, before.version, [{shard: 1, state: 'frozen'}])
      assert.equal(after.version, before.version + 1)
    } finally {
      c.release()
    }
  })

  it('nextUserId hands out increasing user ids', async () => {
    const a = await nextUserId(pool)
    const b = await nextUserId(pool)
    assert.equal(typeof a, 'bigint')
    assert.ok(b > a)
  })
})
