import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {followersKey} from '../../src/shards/counts.js'
import {schemaName, shardOfUser} from '../../src/shards/placement.js'
import {LOGICAL, call, captureLogs, startApp, startAppLab, type AppLab, type RunningApp} from './helpers.js'

interface Made {
  id: string
  token: string
}

/** The counts Postgres holds, from every shard: followers and following per user, likes per photo. */
async function countsInPostgres(app: RunningApp): Promise<{followers: Map<string, number>; following: Map<string, number>; likes: Map<string, number>}> {
  const followers = new Map<string, number>()
  const following = new Map<string, number>()
  const likes = new Map<string, number>()
  const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n)
  const pools = app.deps.pools
  const map = await pools.catalog.query<{shard: number; server: string}>('SELECT shard, server FROM shard_map ORDER BY shard')
  for (const {shard, server} of map.rows) {
    const s = schemaName(shard)
    const f = await pools.pool(server).query<{follower_id: string; followee_id: string}>(`SELECT follower_id::text, followee_id::text FROM ${s}.follows`)
    for (const r of f.rows) {
      add(followers, r.followee_id, 1)
      add(following, r.follower_id, 1)
      assert.equal(shardOfUser(BigInt(r.follower_id), LOGICAL), shard, "an edge lives in the follower's shard")
    }
    const l = await pools.pool(server).query<{photo_id: string; n: number}>(`SELECT photo_id::text, count(*)::int AS n FROM ${s}.likes GROUP BY 1`)
    for (const r of l.rows) add(likes, r.photo_id, r.n)
  }
  return {followers, following, likes}
}

describe('counts through the app equal Postgres under concurrent writes', {timeout: 240_000}, () => {
  let env: AppLab
  let running: RunningApp
  let url: string
  const {stream} = captureLogs()
  const users: Made[] = []
  const photos: string[] = []

  before(async () => {
    env = await startAppLab()
    running = await startApp(env.config, stream)
    url = running.url
    for (let i = 0; i < 10; i++) {
      const r = await call(url, 'POST', '/users', {body: {username: `c${i}_${process.pid}`, name: `c ${i}`}})
      assert.equal(r.status, 201, JSON.stringify(r.body))
      users.push({id: r.body.user.id, token: r.body.token})
    }
    for (const u of users.slice(0, 4)) {
      const r = await call(url, 'POST', '/photos', {token: u.token, body: {caption: 'c', s3Key: `photos/${u.id}.jpg`}})
      assert.equal(r.status, 201, JSON.stringify(r.body))
      photos.push(r.body.photo.id)
    }
  })
  after(async () => {
    await running?.stop()
    await env?.lab.stop()
  })

  it('moves no counter for a duplicate follow or an unfollow of nothing, even sent at once', async () => {
    const [a, b] = users as [Made, Made]
    const path = `/users/${a.id}/following/${b.id}`
    await call(url, 'GET', `/users/${b.id}`) // cached in Memcached before the writes
    const follows = await Promise.all(Array.from({length: 8}, () => call(url, 'PUT', path, {token: a.token})))
    assert.deepEqual(follows.map((r) => r.status), Array(8).fill(200))
    assert.equal(follows.filter((r) => r.body.changed).length, 1, 'one of eight identical follows added the edge')
    assert.equal((await call(url, 'GET', `/users/${b.id}`)).body.user.followers, 1)
    assert.equal((await call(url, 'GET', `/users/${a.id}`)).body.user.following, 1)
    const unfollows = await Promise.all(Array.from({length: 8}, () => call(url, 'DELETE', path, {token: a.token})))
    assert.equal(unfollows.filter((r) => r.body.changed).length, 1)
    assert.equal((await call(url, 'GET', `/users/${b.id}`)).body.user.followers, 0)
    assert.equal((await call(url, 'GET', `/users/${a.id}`)).body.user.following, 0)
    assert.equal(await running.deps.redis.get(followersKey(b.id)), '0')
  })

  it('gives every user and photo the counts Postgres holds after a burst of follows, unfollows and likes', async () => {
    // 400 random writes, 32 at a time, reads mixed in so Memcached holds users while their counts change
    const ops = Array.from({length: 400}, (_, i) => {
      const u = users[Math.floor(Math.random() * users.length)]!
      const t = users[Math.floor(Math.random() * users.length)]!
      const p = photos[Math.floor(Math.random() * photos.length)]!
      const kind = i % 5
      if (kind === 0 || kind === 1) return () => (u === t ? call(url, 'GET', `/users/${t.id}`) : call(url, 'PUT', `/users/${u.id}/following/${t.id}`, {token: u.token}))
      if (kind === 2) return () => call(url, 'DELETE', `/users/${u.id}/following/${t.id}`, {token: u.token})
      if (kind === 3) return () => call(url, Math.random() < 0.6 ? 'PUT' : 'DELETE', `/photos/${p}/likes`, {token: u.token})
      return () => call(url, 'GET', Math.random() < 0.5 ? `/users/${t.id}` : `/photos/${p}`)
    })
    for (let i = 0; i < ops.length; i += 32) {
      const rs = await Promise.all(ops.slice(i, i + 32).map((op) => op()))
      for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r.body))
    }
    const pg = await countsInPostgres(running)
    assert.ok([...pg.followers.values()].reduce((a, b) => a + b, 0) > 10, 'the burst left some follows')
    for (const u of users) {
      const r = await call(url, 'GET', `/users/${u.id}`)
      assert.equal(r.body.user.followers, pg.followers.get(u.id) ?? 0, `followers of ${u.id}`)
      assert.equal(r.body.user.following, pg.following.get(u.id) ?? 0, `following of ${u.id}`)
    }
    for (const p of photos) assert.equal((await call(url, 'GET', `/photos/${p}`)).body.photo.likeCount, pg.likes.get(p) ?? 0, `likes of ${p}`)
  })
})
