import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import type {Redis} from 'ioredis'

import {loadConfig} from '../../src/config/load.js'
import type {ShardsSettings} from '../../src/config/schema.js'
import {isUserError} from '../../src/errors.js'
import {decodeId, encodeId, epochMs} from '../../src/shards/ids.js'
import {initShards} from '../../src/shards/init.js'
import {followersKey, followingKey, readFollowCounts, type RecountResult} from '../../src/shards/counts.js'
import {connectRedis} from '../../src/shards/photo-map/redis.js'
import {PhotoOwnerMap} from '../../src/shards/photo-map/map.js'
import {schemaName, shardOfUser, shardOfUsername} from '../../src/shards/placement.js'
import {ServerPools} from '../../src/shards/pools.js'
import {insertPhotos, seedLab, validateSeedOptions, type SeedResult} from '../../src/shards/seed/index.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import {runCli} from './helpers.js'

const LOGICAL = 16
const DAY = 86_400_000

interface PhotoRow {
  shard: number
  id: string
  user_id: string
  created_at: Date
}

async function allRows<T>(pools: ServerPools, settings: ShardsSettings, table: string, cols: string): Promise<(T & {shard: number})[]> {
  void settings
  const out: (T & {shard: number})[] = []
  const map = await pools.catalog.query<{shard: number; server: string}>('SELECT shard, server FROM shard_map ORDER BY shard')
  assert.equal(map.rows.length, LOGICAL)
  for (const {shard, server} of map.rows) {
    const r = await pools.pool(server).query(`SELECT ${cols} FROM ${schemaName(shard)}.${table}`)
    for (const row of r.rows) out.push({...(row as T), shard})
  }
  return out
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

describe('lab seed on 2 Postgres servers and Redis', () => {
  let lab: TestLab
  let pools: ServerPools
  let settings: ShardsSettings
  let redis: Redis
  let first: SeedResult

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

  it('refuses to seed before shards init, touching nothing', async () => {
    await assert.rejects(seedLab(pools, settings, redis, {users: 10, photos: 10}), (err) => {
      assert.ok(isUserError(err))
      assert.match(err.message, /catalog does not exist|No logical shards/)
      assert.match(err.fix ?? '', /feedops shards init/)
      return true
    })
    assert.equal(await redis.exists('pm:gen'), 0)
    const r = await runCli(['lab', 'seed', '--config', lab.configFile, '--users', '10', '--photos', '10'])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^Error: .*\nFix: Run `feedops shards init` first/)
  })

  it('rejects bad counts', async () => {
    assert.throws(() => validateSeedOptions({users: 0, photos: 1}), /--users 0 is out of range/)
    assert.throws(() => validateSeedOptions({users: 1, photos: -1}), /--photos -1 is out of range/)
    assert.throws(() => validateSeedOptions({users: 1, photos: 1, followsMedian: 1.5}), /--follows-median/)
    const r = await runCli(['lab', 'seed', '--config', lab.configFile, '--users', '5'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /Missing required flag --photos\./)
  })

  it('makes the requested users, photos and a long-tailed follow graph', async () => {
    const init = await initShards(pools, settings, {logical: LOGICAL})
    assert.ok(init.complete)
    const now = Date.now()
    first = await seedLab(pools, settings, redis, {users: 1500, photos: 15_000, followsMedian: 20, days: 180, now})
    assert.equal(first.users, 1500)
    assert.equal(first.photos, 15_000)
    assert.equal(first.mapped, 15_000)
    assert.equal(first.skippedPhotos, 0)
    assert.ok(first.servers.every((s) => !s.error && s.users > 0))

    const users = await allRows<{id: string}>(pools, settings, 'users', 'id::text')
    assert.equal(users.length, 1500)
    for (const u of users) assert.equal(shardOfUser(BigInt(u.id), LOGICAL), u.shard, `user ${u.id} in its hashed shard`)
    // every username is claimed on the shard its name hashes to, so a signup of the same name is refused
    const claims = await allRows<{username: string; user_id: string}>(pools, settings, 'usernames', 'username, user_id::text')
    assert.equal(claims.length, 1500)
    for (const c of claims) {
      assert.equal(c.username, `user${c.user_id}`)
      assert.equal(shardOfUsername(c.username, LOGICAL), c.shard)
    }

    const follows = await allRows<{follower_id: string; followee_id: string}>(pools, settings, 'follows', 'follower_id::text, followee_id::text')
    assert.equal(follows.length, first.follows)
    const perFollower = new Map<string, number>()
    const perFollowee = new Map<string, number>()
    for (const f of follows) {
      assert.equal(shardOfUser(BigInt(f.follower_id), LOGICAL), f.shard, 'follows live in the follower shard')
      assert.notEqual(f.follower_id, f.followee_id)
      perFollower.set(f.follower_id, (perFollower.get(f.follower_id) ?? 0) + 1)
      perFollowee.set(f.followee_id, (perFollowee.get(f.followee_id) ?? 0) + 1)
    }
    const counts = [...perFollower.values()]
    const med = median(counts)
    const max = Math.max(...counts)
    assert.ok(med >= 14 && med <= 28, `median follows ${med} near 20`)
    assert.ok(max >= 8 * med, `long tail: max ${max} vs median ${med}`)
    const followers = [...perFollowee.values()]
    assert.ok(Math.max(...followers) >= 10 * median(followers), 'a few users are followed by many')
    assert.equal(first.followsPerUser.max, max)

    const photos = await allRows<Omit<PhotoRow, 'shard'>>(pools, settings, 'photos', 'id::text, user_id::text, created_at')
    assert.equal(photos.length, 15_000)
    const epoch = epochMs(settings.epoch)
    for (const p of photos) {
      const d = decodeId(BigInt(p.id), epoch)
      assert.equal(d.time.getTime(), p.created_at.getTime(), `photo ${p.id} decodes to its created_at`)
      assert.equal(d.shard, p.shard, 'the id carries the shard it lives in')
      assert.equal(shardOfUser(BigInt(p.user_id), LOGICAL), p.shard, "the photo lives in its owner's shard")
      assert.ok(d.time.getTime() < now && d.time.getTime() > now - 181 * DAY, 'within the last 6 months')
    }
    // the photo map answers for every photo
    const map = new PhotoOwnerMap(redis)
    const owners = await map.getMany(photos.map((p) => BigInt(p.id)))
    assert.deepEqual(owners, photos.map((p) => BigInt(p.user_id)))
  })

  it('leaves every shard analyzed and all-visible, so the feed reads by index-only scans', async () => {
    const shardMap = await pools.catalog.query<{shard: number; server: string}>('SELECT shard, server FROM shard_map ORDER BY shard')
    for (const {shard, server} of shardMap.rows) {
      const r = await pools.pool(server).query<{relname: string; relpages: number; relallvisible: number; analyzed: boolean}>(
        `SELECT c.relname, c.relpages, c.relallvisible, s.last_analyze IS NOT NULL AS analyzed
           FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
          WHERE s.schemaname = $1 AND c.relname IN ('photos', 'follows')`,
        [schemaName(shard)],
      )
      assert.equal(r.rows.length, 2)
      for (const t of r.rows) {
        assert.ok(t.analyzed, `${schemaName(shard)}.${t.relname} analyzed`)
        assert.ok(t.relpages > 0 && t.relallvisible === t.relpages, `${schemaName(shard)}.${t.relname}: ${t.relallvisible} of ${t.relpages} pages all-visible`)
      }
    }
    const plan = await pools.pool(shardMap.rows[0]!.server).query<{'QUERY PLAN': string}>(
      `EXPLAIN SELECT id FROM ${schemaName(0)}.photos WHERE user_id = 1 ORDER BY id DESC LIMIT 20`,
    )
    assert.match(plan.rows.map((r) => r['QUERY PLAN']).join('\n'), /Index Only Scan/)
  })

  it('adds more data when run again (through the CLI, --json) and keeps ids unique', async () => {
    const r = await runCli(['lab', 'seed', '--config', lab.configFile, '--users', '300', '--photos', '3000', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const second = JSON.parse(r.stdout) as SeedResult
    assert.equal(second.users, 300)
    assert.equal(second.photos + second.skippedPhotos, 3000)
    assert.ok(BigInt(second.userIds!.first) > BigInt(first.userIds!.last), 'new users take new ids from the sequence')
    const photos = await allRows<{id: string}>(pools, settings, 'photos', 'id::text')
    assert.equal(photos.length, 15_000 + second.photos)
    assert.equal((await allRows(pools, settings, 'users', 'id')).length, 1800)
  })

  it('leaves every follower and following count in Redis equal to Postgres, and `shards recount` rebuilds them', async () => {
    const check = async () => {
      const users = await allRows<{id: string}>(pools, settings, 'users', 'id::text')
      const follows = await allRows<{follower_id: string; followee_id: string}>(pools, settings, 'follows', 'follower_id::text, followee_id::text')
      const followers = new Map<string, number>()
      const following = new Map<string, number>()
      for (const f of follows) {
        followers.set(f.followee_id, (followers.get(f.followee_id) ?? 0) + 1)
        following.set(f.follower_id, (following.get(f.follower_id) ?? 0) + 1)
      }
      const counts = await readFollowCounts(redis, users.map((u) => BigInt(u.id)))
      users.forEach((u, i) => {
        assert.equal(counts[i]!.followers, followers.get(u.id) ?? 0, `followers of ${u.id}`)
        assert.equal(counts[i]!.following, following.get(u.id) ?? 0, `following of ${u.id}`)
      })
      assert.ok(Math.max(...counts.map((c) => c.followers)) > 10)
      return {users: users.length, follows: follows.length}
    }
    const seeded = await check()
    // Redis loses the counts (and one is wrong): the command rebuilds them from Postgres
    const some = (await allRows<{id: string}>(pools, settings, 'users', 'id::text')).slice(0, 200)
    await redis.del(...some.map((u) => followersKey(u.id)), ...some.map((u) => followingKey(u.id)))
    await redis.set(followersKey(some[0]!.id), 999_999)
    const bad = await runCli(['shards', 'recount', '--config', lab.configFile, '--batch', '5'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /--batch 5 is out of range/)
    const r = await runCli(['shards', 'recount', '--config', lab.configFile, '--batch', '100', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const result = JSON.parse(r.stdout) as RecountResult
    assert.ok(result.complete)
    assert.equal(result.users, seeded.users)
    assert.equal(result.follows, seeded.follows)
    await check()
  })

  it('skips photo ids that already exist instead of failing the batch', async () => {
    const users = await allRows<{id: string}>(pools, settings, 'users', 'id::text')
    const u = users.find((x) => x.shard === 3)!
    const s = schemaName(3)
    const at = Date.now() - DAY
    const ms = BigInt(at) - epochMs(settings.epoch)
    const ids = [0, 1, 2].map((seq) => encodeId({msSinceEpoch: ms, shard: 3, seq: 1000 + seq}))
    const server = (await pools.catalog.query<{server: string}>('SELECT server FROM shard_map WHERE shard = 3')).rows[0]!.server
    const client = await pools.pool(server).connect()
    try {
      await client.query(`INSERT INTO ${s}.photos (id, user_id, s3_key, created_at) VALUES ($1, $2, 'x', now())`, [ids[1]!.toString(), u.id])
      const rows = {ids, owners: new Uint32Array([0, 0, 0]), times: new Float64Array([at, at, at]), userIds: new Float64Array([Number(u.id)])}
      const inserted = await insertPhotos(client, s, rows, 0, 3)
      assert.deepEqual(inserted, [0, 2])
      const n = await client.query(`SELECT count(*)::int AS n FROM ${s}.photos WHERE id = ANY($1::bigint[])`, [ids.map(String)])
      assert.equal(n.rows[0].n, 3)
    } finally {
      client.release()
    }
  })
})
