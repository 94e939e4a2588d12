import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import type {Redis} from 'ioredis'

import {loadConfig} from '../../src/config/load.js'
import type {ShardsSettings} from '../../src/config/schema.js'
import {isUserError} from '../../src/errors.js'
import {initShards} from '../../src/shards/init.js'
import {connectRedis} from '../../src/shards/photo-map/redis.js'
import {PhotoOwnerMap, SPLIT_FILL} from '../../src/shards/photo-map/map.js'
import {schemaName} from '../../src/shards/placement.js'
import {ServerPools} from '../../src/shards/pools.js'
import {reindexPhotos, validateReindexOptions, type ReindexResult} from '../../src/shards/reindex.js'
import {seedLab} from '../../src/shards/seed/index.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import {runCli} from './helpers.js'

const LOGICAL = 16

async function photosInPostgres(pools: ServerPools): Promise<{id: bigint; user: bigint}[]> {
  const map = await pools.catalog.query<{shard: number; server: string}>('SELECT shard, server FROM shard_map ORDER BY shard')
  const out: {id: bigint; user: bigint}[] = []
  for (const {shard, server} of map.rows) {
    const r = await pools.pool(server).query<{id: string; user_id: string}>(`SELECT id::text, user_id::text FROM ${schemaName(shard)}.photos`)
    for (const row of r.rows) out.push({id: BigInt(row.id), user: BigInt(row.user_id)})
  }
  return out
}

async function keysOfGeneration(redis: Redis, generation: number): Promise<number> {
  let n = 0
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `pm:${generation}:*`, 'COUNT', 1000)
    cursor = next
    n += keys.length
  } while (cursor !== '0')
  return n
}

describe('shards reindex-photos on 2 Postgres servers and Redis', () => {
  let lab: TestLab
  let pools: ServerPools
  let settings: ShardsSettings
  let redis: Redis

  before(async () => {
    lab = await startTestLab({postgres: 2, redis: true})
    const loaded = loadConfig({flag: lab.configFile})
    settings = {...loaded.env.shards!, logical: LOGICAL}
    pools = new ServerPools(settings, {max: 4})
    redis = await connectRedis(loaded.env, loaded.environment)
  })
  after(async () => {
    redis?.disconnect()
    await pools?.end()
    await lab?.stop()
  })

  it('needs shards init, and rejects bad flags before touching anything', async () => {
    await assert.rejects(reindexPhotos(pools, settings, redis), (err) => isUserError(err) && /shards init/.test(err.fix ?? ''))
    assert.equal(await redis.dbsize(), 0)
    assert.throws(() => validateReindexOptions({batch: 5}), /--batch 5 is out of range/)
    assert.throws(() => validateReindexOptions({concurrency: 0}), /--concurrency 0 is out of range/)
    const r = await runCli(['shards', 'reindex-photos', '--config', lab.configFile, '--batch', '0'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /^Error: --batch 0 is out of range/)
  })

  it('rebuilds the map from Postgres after FLUSHDB', async () => {
    assert.ok((await initShards(pools, settings, {logical: LOGICAL})).complete)
    await seedLab(pools, settings, redis, {users: 400, photos: 6000, followsMedian: 5})
    const photos = await photosInPostgres(pools)
    assert.equal(photos.length, 6000)
    await redis.flushdb()
    const map = new PhotoOwnerMap(redis)
    assert.equal(await new PhotoOwnerMap(redis, {prefix: 'pm'}).activeGeneration(), null)

    const result = await reindexPhotos(pools, settings, redis, {batch: 500})
    assert.ok(result.complete)
    assert.equal(result.photos, 6000)
    assert.equal(result.previous, null)
    assert.equal(result.state.generation, 1)
    assert.equal(result.state.mappings, 6000)
    assert.equal(result.state.buckets, Math.ceil(6000 / SPLIT_FILL), 'the new generation grew as it filled')
    assert.equal(result.stats?.mappings, 6000)
    assert.equal(result.stats?.notListpack, 0)
    assert.deepEqual(
      await map.getMany(photos.map((p) => p.id)),
      photos.map((p) => p.user),
    )
  })

  it('rebuilds into a new generation, keeps photos written meanwhile, and drops the old keys (CLI, --json)', async () => {
    // The app writes a photo while the rebuild streams: to Postgres (next_id()) and to the active (old)
    // generation. It must be in the new map afterwards.
    const appMap = new PhotoOwnerMap(redis)
    let written: {id: bigint; user: bigint} | null = null
    const during = reindexPhotos(pools, settings, redis, {batch: 200, concurrency: 1}, (p) => {
      if (written || p.photos === 0) return
      written = {id: 0n, user: 0n}
      void (async () => {
        const server = (await pools.catalog.query<{server: string}>('SELECT server FROM shard_map WHERE shard = 5')).rows[0]!.server
        const s = schemaName(5)
        const r = await pools.pool(server).query<{id: string; user_id: string}>(
          `INSERT INTO ${s}.photos (user_id, s3_key) SELECT id, 'during' FROM ${s}.users LIMIT 1 RETURNING id::text, user_id::text`,
        )
        written = {id: BigInt(r.rows[0]!.id), user: BigInt(r.rows[0]!.user_id)}
        await appMap.set(written.id, written.user)
      })()
    })
    const result = await during
    assert.ok(result.complete)
    assert.equal(result.state.generation, 2)
    assert.equal(result.previous, 1)
    assert.ok(result.caughtUp >= 1, 'photos made during the rebuild are copied again')
    assert.ok(result.droppedKeys > 0)
    assert.equal(await keysOfGeneration(redis, 1), 0)
    assert.ok(written)
    const w = written as {id: bigint; user: bigint}
    assert.ok(w.id > 0n)
    assert.equal(await new PhotoOwnerMap(redis).get(w.id), w.user)

    const photos = await photosInPostgres(pools)
    assert.equal(photos.length, 6001)
    const fresh = new PhotoOwnerMap(redis)
    assert.deepEqual(await fresh.getMany(photos.map((p) => p.id)), photos.map((p) => p.user))

    const r = await runCli(['shards', 'reindex-photos', '--config', lab.configFile, '--batch', '1000', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const viaCli = JSON.parse(r.stdout) as ReindexResult
    assert.equal(viaCli.photos, 6001)
    assert.equal(viaCli.state.generation, 3)
    assert.equal(viaCli.state.mappings, 6001)
    assert.equal(viaCli.stats?.notListpack, 0)
    assert.equal(await keysOfGeneration(redis, 2), 0)
  })

  it('refuses to run while another rebuild holds the lock', async () => {
    await redis.set('pm:reindex-lock', 'someone', 'PX', 5000)
    try {
      await assert.rejects(reindexPhotos(pools, settings, redis), (err) => isUserError(err) && err.exitCode === 3)
      assert.equal(await new PhotoOwnerMap(redis).activeGeneration(), 3, 'nothing changed')
    } finally {
      await redis.del('pm:reindex-lock')
    }
  })
})
