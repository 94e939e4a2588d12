import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {issueToken, verifyToken} from '../../app/auth/token.js'
import {shardOfUser} from '../../src/shards/placement.js'
import {CDN, LOGICAL, SECRET, call, captureLogs, startApp, startAppLab, type AppLab, type RunningApp} from './helpers.js'

interface RecordedQuery {
  server: string
  text: string
  /** Set for a named (prepared) statement. */
  name?: string
}

/** From now on, every query an app's shard-server pools run is appended to `into`. */
function recordQueries(app: RunningApp, into: RecordedQuery[]): void {
  for (const server of app.deps.pools.serverNames) {
    const pool = app.deps.pools.pool(server)
    const original = pool.query.bind(pool) as (...args: unknown[]) => unknown
    pool.query = ((...args: unknown[]) => {
      const q = args[0] as string | {text: string; name?: string}
      into.push(typeof q === 'string' ? {server, text: q} : {server, text: q.text, ...(q.name === undefined ? {} : {name: q.name})})
      return original(...args)
    }) as typeof pool.query
  }
}

/** The endpoints against a real lab: 2 Postgres servers with 16 logical shards, Redis, Memcached. */

interface Made {
  id: string
  token: string
}

describe('feed app API', {timeout: 240_000}, () => {
  let env: AppLab
  let running: RunningApp
  let url: string
  const {stream, logs} = captureLogs()
  let seq = 0

  const createUser = async (prefix = 'u'): Promise<Made> => {
    const r = await call(url, 'POST', '/users', {body: {username: `${prefix}${seq++}_${process.pid}`, name: `${prefix} ${seq}`}})
    assert.equal(r.status, 201, JSON.stringify(r.body))
    return {id: r.body.user.id, token: r.body.token}
  }
  const postPhoto = async (u: Made, key: string) => {
    const r = await call(url, 'POST', '/photos', {token: u.token, body: {caption: `c ${key}`, s3Key: key}})
    assert.equal(r.status, 201, JSON.stringify(r.body))
    return r.body.photo as {id: string; url: string}
  }

  before(async () => {
    env = await startAppLab()
    running = await startApp(env.config, stream)
    url = running.url
  })
  after(async () => {
    await running?.stop()
    await env?.lab.stop()
  })

  describe('users', () => {
    it('creates a user and returns it with a token; ids are strings', async () => {
      const r = await call(url, 'POST', '/users', {body: {username: 'alice_api', name: 'Alice'}})
      assert.equal(r.status, 201)
      assert.match(r.body.user.id, /^\d+$/)
      assert.equal(r.body.user.username, 'alice_api')
      assert.equal(r.body.user.followers, 0)
      assert.equal(verifyToken(SECRET, r.body.token)?.userId, BigInt(r.body.user.id))
      const got = await call(url, 'GET', `/users/${r.body.user.id}`)
      assert.equal(got.status, 200)
      assert.deepEqual({...got.body.user}, {...r.body.user})
    })

    it('rejects a username taken in the same shard with 409', async () => {
      // Usernames are unique per shard (the shard DDL); by pigeonhole, 17 tries over 16 shards must collide.
      const statuses: number[] = []
      for (let i = 0; i < LOGICAL + 1 && !statuses.includes(409); i++) {
        statuses.push((await call(url, 'POST', '/users', {body: {username: 'bob_dup', name: 'Bob'}})).status)
      }
      assert.equal(statuses.at(-1), 409)
      assert.ok(statuses.slice(0, -1).every((s) => s === 201))
    })

    for (const [what, body, raw] of [
      ['no username', {name: 'x'}, undefined],
      ['a bad username', {username: 'a b!', name: 'x'}, undefined],
      ['an unknown key', {username: 'okname', name: 'x', admin: true}, undefined],
      ['a name of the wrong type', {username: 'okname', name: 7}, undefined],
      ['broken JSON', undefined, '{"username": '],
      ['a JSON array', undefined, '[1,2]'],
    ] as const) {
      it(`answers 400 for ${what}`, async () => {
        const r = await call(url, 'POST', '/users', raw ? {raw, headers: {'content-type': 'application/json'}} : {body})
        assert.equal(r.status, 400, JSON.stringify(r.body))
        assert.equal(typeof r.body.error.message, 'string')
      })
    }

    it('answers 400 for a body that is not JSON', async () => {
      const r = await call(url, 'POST', '/users', {raw: 'username=x', headers: {'content-type': 'text/plain'}})
      assert.equal(r.status, 400)
    })

    for (const bad of ['abc', '-1', '0', '18446744073709551616', '9223372036854775808', '1.5']) {
      it(`answers 400 for the path id ${bad}`, async () => {
        const r = await call(url, 'GET', `/users/${bad}`)
        assert.equal(r.status, 400, JSON.stringify(r.body))
        assert.ok(r.body.error.message.length > 0)
      })
    }

    it('answers 404 for an unknown user', async () => {
      const r = await call(url, 'GET', '/users/987654321')
      assert.equal(r.status, 404)
      assert.match(r.body.error.message, /not found/)
    })
  })

  describe('follows and auth', () => {
    let a: Made, b: Made, c: Made
    before(async () => {
      ;[a, b, c] = [await createUser('fa'), await createUser('fb'), await createUser('fc')]
    })

    it('needs a token (401), the right user (403), and a good signature (401)', async () => {
      const path = `/users/${a.id}/following/${b.id}`
      const none = await call(url, 'PUT', path)
      assert.equal(none.status, 401)
      assert.equal(none.headers.get('www-authenticate'), 'Bearer')
      assert.equal((await call(url, 'PUT', path, {token: 'garbage'})).status, 401)
      assert.equal((await call(url, 'PUT', path, {token: issueToken('another-secret-of-length-32-xxxx', {userId: BigInt(a.id), generation: 0, expiresAt: 4e9})})).status, 401)
      const tampered = a.token.slice(0, -2) + (a.token.endsWith('AA') ? 'BB' : 'AA')
      assert.equal((await call(url, 'PUT', path, {token: tampered})).status, 401)
      const other = await call(url, 'PUT', path, {token: b.token})
      assert.equal(other.status, 403)
      assert.match(other.body.error.message, /may not act/)
      assert.equal((await call(url, 'DELETE', path, {token: c.token})).status, 403)
    })

    it('follows and unfollows; counts change at once (cache invalidated), repeats change nothing', async () => {
      // Fill the cache first.
      assert.equal((await call(url, 'GET', `/users/${b.id}`)).body.user.followers, 0)
      assert.equal((await call(url, 'GET', `/users/${a.id}`)).body.user.following, 0)
      const f = await call(url, 'PUT', `/users/${a.id}/following/${b.id}`, {token: a.token})
      assert.equal(f.status, 200)
      assert.deepEqual(f.body, {userId: a.id, targetId: b.id, following: true, changed: true})
      assert.equal((await call(url, 'PUT', `/users/${a.id}/following/${b.id}`, {token: a.token})).body.changed, false)
      await call(url, 'PUT', `/users/${c.id}/following/${b.id}`, {token: c.token})
      assert.equal((await call(url, 'GET', `/users/${b.id}`)).body.user.followers, 2)
      assert.equal((await call(url, 'GET', `/users/${a.id}`)).body.user.following, 1)
      const u = await call(url, 'DELETE', `/users/${a.id}/following/${b.id}`, {token: a.token})
      assert.deepEqual(u.body, {userId: a.id, targetId: b.id, following: false, changed: true})
      assert.equal((await call(url, 'DELETE', `/users/${a.id}/following/${b.id}`, {token: a.token})).body.changed, false)
      assert.equal((await call(url, 'GET', `/users/${b.id}`)).body.user.followers, 1)
      assert.equal((await call(url, 'GET', `/users/${a.id}`)).body.user.following, 0)
    })

    it('rejects following oneself (400), an unknown user (404) and bad ids (400)', async () => {
      assert.equal((await call(url, 'PUT', `/users/${a.id}/following/${a.id}`, {token: a.token})).status, 400)
      assert.equal((await call(url, 'PUT', `/users/${a.id}/following/99999999`, {token: a.token})).status, 404)
      assert.equal((await call(url, 'PUT', `/users/${a.id}/following/x1`, {token: a.token})).status, 400)
    })
  })

  describe('photos and likes', () => {
    let owner: Made, fan: Made
    before(async () => {
      owner = await createUser('po')
      fan = await createUser('pf')
    })

    it('creates a photo with a CDN URL and reads it back with its like count', async () => {
      const r = await call(url, 'POST', '/photos', {token: owner.token, body: {caption: 'sunset', s3Key: 'photos/2026/a b.jpg'.replace(' ', '_')}})
      assert.equal(r.status, 201)
      assert.match(r.body.photo.id, /^\d+$/)
      assert.equal(r.body.photo.url, `${CDN}/photos/2026/a_b.jpg`)
      assert.equal(r.body.photo.userId, owner.id)
      // The photo id carries the owner's shard.
      const shard = Number((BigInt(r.body.photo.id) >> 10n) & 8191n)
      assert.equal(shard, shardOfUser(BigInt(owner.id), LOGICAL))
      const got = await call(url, 'GET', `/photos/${r.body.photo.id}`)
      assert.equal(got.status, 200)
      assert.equal(got.body.photo.likeCount, 0)
      assert.equal(got.body.photo.caption, 'sunset')
    })

    it('likes and unlikes idempotently', async () => {
      const p = await postPhoto(owner, 'photos/like.jpg')
      for (let i = 0; i < 2; i++) {
        const r = await call(url, 'PUT', `/photos/${p.id}/likes`, {token: fan.token})
        assert.equal(r.status, 200)
        assert.equal(r.body.liked, true)
      }
      await call(url, 'PUT', `/photos/${p.id}/likes`, {token: owner.token})
      assert.equal((await call(url, 'GET', `/photos/${p.id}`)).body.photo.likeCount, 2)
      assert.equal((await call(url, 'DELETE', `/photos/${p.id}/likes`, {token: fan.token})).body.liked, false)
      assert.equal((await call(url, 'DELETE', `/photos/${p.id}/likes`, {token: fan.token})).status, 200)
      assert.equal((await call(url, 'GET', `/photos/${p.id}`)).body.photo.likeCount, 1)
    })

    it('answers 401 without a token, 400 for bad input, 404 for unknown photos', async () => {
      assert.equal((await call(url, 'POST', '/photos', {body: {s3Key: 'a.jpg'}})).status, 401)
      assert.equal((await call(url, 'POST', '/photos', {token: owner.token, body: {s3Key: '/abs.jpg'}})).status, 400)
      assert.equal((await call(url, 'POST', '/photos', {token: owner.token, body: {s3Key: 'a/../b.jpg'}})).status, 400)
      assert.equal((await call(url, 'POST', '/photos', {token: owner.token, body: {caption: 'no key'}})).status, 400)
      assert.equal((await call(url, 'POST', '/photos', {token: owner.token, body: {s3Key: 'k.jpg', caption: 5}})).status, 400)
      assert.equal((await call(url, 'PUT', '/photos/abc/likes', {token: fan.token})).status, 400)
      assert.equal((await call(url, 'PUT', '/photos/1/likes')).status, 401)
      // A well-formed id whose shard exists but no such photo, and one whose shard is past the logical count.
      const missing = (1n << 23n) | (3n << 10n)
      assert.equal((await call(url, 'GET', `/photos/${missing}`)).status, 404)
      assert.equal((await call(url, 'PUT', `/photos/${missing}/likes`, {token: fan.token})).status, 404)
      assert.equal((await call(url, 'DELETE', `/photos/${missing}/likes`, {token: fan.token})).status, 404)
      assert.equal((await call(url, 'GET', `/photos/${(1n << 23n) | (500n << 10n)}`)).status, 404)
    })

    it('refuses bodies over the limit with 413, declared or streamed', async () => {
      const big = {caption: 'x'.repeat(5000), s3Key: 'big.jpg'}
      const r = await call(url, 'POST', '/photos', {token: owner.token, body: big})
      assert.equal(r.status, 413)
      assert.match(r.body.error.message, /larger than 4096 bytes/)
      // Chunked: no Content-Length, so the parser's limit applies.
      const chunks = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(JSON.stringify(big)))
          controller.close()
        },
      })
      const res = await fetch(`${url}/users`, {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: chunks,
        duplex: 'half',
      } as RequestInit)
      assert.equal(res.status, 413)
      assert.ok(((await res.json()) as {error: {message: string}}).error.message.length > 0)
    })
  })

  describe('feed', () => {
    let reader: Made
    const followees: Made[] = []
    const photoIds: string[] = []
    const queries: RecordedQuery[] = []

    before(async () => {
      reader = await createUser('reader')
      // Enough followed users that each of the 2 servers holds several of their shards.
      for (let i = 0; i < 14; i++) followees.push(await createUser('author'))
      for (const f of followees) {
        const r = await call(url, 'PUT', `/users/${reader.id}/following/${f.id}`, {token: reader.token})
        assert.equal(r.status, 200)
      }
      for (let round = 0; round < 3; round++) {
        for (const [i, f] of followees.entries()) photoIds.push((await postPhoto(f, `feed/${round}/${i}.jpg`)).id)
      }
      // A photo of someone not followed must not show up.
      await postPhoto(await createUser('stranger'), 'feed/stranger.jpg')
      // Count every query each physical server's pool runs from here on.
      recordQueries(running, queries)
    })

    it('spreads the followed users over shards on both servers', () => {
      const shards = new Set(followees.map((f) => shardOfUser(BigInt(f.id), LOGICAL)))
      const servers = new Set([...shards].map((s) => running.deps.maps.serverOf(s)))
      assert.equal(servers.size, 2)
      assert.ok(shards.size >= 6, `only ${shards.size} shards`)
    })

    it('pages newest first by id with a next cursor, across shards and servers', async () => {
      const expected = [...photoIds].sort((x, y) => (BigInt(y) > BigInt(x) ? 1 : -1))
      const seen: string[] = []
      let before: string | null = null
      for (let pages = 0; pages < 20; pages++) {
        const r = await call(url, 'GET', `/feed/${reader.id}?limit=5${before ? `&before=${before}` : ''}`)
        assert.equal(r.status, 200, JSON.stringify(r.body))
        for (const item of r.body.items) {
          assert.equal(typeof item.id, 'string')
          assert.ok(item.url.startsWith(`${CDN}/feed/`))
          assert.equal(item.user.id, item.userId)
          assert.match(item.user.username, /^author/)
        }
        seen.push(...r.body.items.map((i: {id: string}) => i.id))
        before = r.body.next
        if (!before) break
        assert.equal(before, r.body.items.at(-1).id)
      }
      assert.deepEqual(seen, expected)
    })

    it('says next: null on the true last page, also when the total is a multiple of the limit', async () => {
      assert.equal(photoIds.length, 42)
      for (const limit of [6, 7, 14, 21, 42, 41, 100]) {
        const pages: number[] = []
        let before: string | null = null
        do {
          const r = await call(url, 'GET', `/feed/${reader.id}?limit=${limit}${before ? `&before=${before}` : ''}`)
          assert.equal(r.status, 200)
          pages.push(r.body.items.length)
          before = r.body.next
        } while (before && pages.length < 50)
        const full = Math.floor(42 / limit)
        const expected = [...Array(full).fill(limit), ...(42 % limit ? [42 % limit] : [])]
        assert.deepEqual(pages, expected, `limit ${limit}`)
      }
    })

    it('sends one id query per physical server (not per logical shard)', async () => {
      queries.length = 0
      const r = await call(url, 'GET', `/feed/${reader.id}?limit=10`)
      assert.equal(r.status, 200)
      assert.equal(r.body.items.length, 10)
      const idQueries = queries.filter((q) => q.text.includes('app:feed-ids'))
      assert.deepEqual(idQueries.map((q) => q.server).sort(), [...running.deps.pools.serverNames].sort())
      assert.ok(idQueries.every((q) => q.name), 'the id queries are prepared statements')
      // Whole request: the follow list (reader's server), ids, and rows: at most 3 queries per server
      // (user objects come from Memcached, filled by the earlier page reads).
      for (const server of running.deps.pools.serverNames) {
        assert.ok(queries.filter((q) => q.server === server).length <= 3, JSON.stringify(queries.map((q) => [q.server, q.text.slice(0, 30)])))
      }
    })

    it('gives the same page with the per-shard baseline, in one query per logical shard', async () => {
      const naive = await startApp(env.config, stream, {feedStrategy: 'per-shard'})
      try {
        recordQueries(naive, queries)
        const fast = await call(url, 'GET', `/feed/${reader.id}?limit=10`)
        queries.length = 0
        const slow = await call(naive.url, 'GET', `/feed/${reader.id}?limit=10`)
        assert.deepEqual(slow.body, fast.body)
        const shards = new Set(followees.map((f) => shardOfUser(BigInt(f.id), LOGICAL)))
        assert.equal(queries.filter((q) => q.text.includes('app:feed-ids')).length, shards.size)
      } finally {
        await naive.stop()
      }
    })

    it('gives the same pages with prepared statements off (for PgBouncer < 1.21), in unnamed statements', async () => {
      const plain = await startApp(env.config, stream, {preparedStatements: false})
      try {
        const seen: RecordedQuery[] = []
        recordQueries(plain, seen)
        for (const q of ['limit=10', 'limit=3', `limit=4&before=${photoIds.at(-3)}`]) {
          const fast = await call(url, 'GET', `/feed/${reader.id}?${q}`)
          const slow = await call(plain.url, 'GET', `/feed/${reader.id}?${q}`)
          assert.equal(slow.status, 200)
          assert.deepEqual(slow.body, fast.body, q)
        }
        assert.ok(seen.some((q) => q.text.includes('app:feed-ids')))
        assert.deepEqual(seen.filter((q) => q.name !== undefined), [])
      } finally {
        await plain.stop()
      }
    })

    it('validates the query and handles a reader who follows nobody', async () => {
      for (const q of ['limit=0', 'limit=101', 'limit=abc', 'before=xyz', 'before=-5']) {
        const r = await call(url, 'GET', `/feed/${reader.id}?${q}`)
        assert.equal(r.status, 400, q)
      }
      assert.equal((await call(url, 'GET', '/feed/nope')).status, 400)
      const lonely = await createUser('lonely')
      assert.deepEqual((await call(url, 'GET', `/feed/${lonely.id}`)).body, {items: [], next: null})
    })
  })

  describe('plumbing', () => {
    it('answers unknown routes with 404 JSON and wrong methods with 405', async () => {
      const r = await call(url, 'GET', '/nope')
      assert.equal(r.status, 404)
      assert.deepEqual(r.body, {error: {message: 'no route for GET /nope'}})
      const m = await call(url, 'PATCH', '/users/1')
      assert.equal(m.status, 405)
      assert.ok(m.body.error.message)
    })

    it('echoes a sane x-request-id, makes one otherwise, and logs it', async () => {
      const r = await call(url, 'GET', '/healthz', {headers: {'x-request-id': 'abc-123'}})
      assert.equal(r.headers.get('x-request-id'), 'abc-123')
      const made = await call(url, 'GET', '/healthz', {headers: {'x-request-id': 'bad id with spaces'}})
      assert.match(made.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/)
      const line = logs.lines.map((l) => JSON.parse(l)).find((l) => l.reqId === 'abc-123')
      assert.equal(line?.path, '/healthz')
      assert.equal(line?.status, 200)
    })

    it('is healthy and ready with every check listed', async () => {
      // Run from the source tree (no manifest.json beside it) the app reports release `dev`.
      assert.deepEqual((await call(url, 'GET', '/healthz')).body, {ok: true, release: 'dev', pid: process.pid})
      const r = await call(url, 'GET', '/readyz')
      assert.equal(r.status, 200)
      assert.equal(r.body.ready, true)
      assert.equal(r.body.release, 'dev')
      assert.deepEqual(Object.keys(r.body.checks.servers).sort(), ['pg1', 'pg2'])
      assert.equal(r.body.checks.redis, 'ok')
      assert.equal(r.body.checks.catalog, 'ok')
      assert.ok(r.body.mapVersion >= 1)
    })

    it('says 503 draining on readyz once draining', async () => {
      running.app.lifecycle.draining = true
      try {
        const r = await call(url, 'GET', '/readyz')
        assert.equal(r.status, 503)
        assert.equal(r.body.draining, true)
        assert.equal(r.headers.get('connection'), 'close')
      } finally {
        running.app.lifecycle.draining = false
      }
    })

    it('never logs the secret or a token', async () => {
      // A request that carries the secret itself as a token, and one with a real token.
      assert.equal((await call(url, 'PUT', '/users/1/following/2', {token: SECRET})).status, 401)
      const u = await createUser('logcheck')
      running.deps.logger.info({config: running.deps.settings, token: u.token, headers: {authorization: `Bearer ${u.token}`}}, 'probe')
      const text = logs.text()
      assert.ok(logs.lines.length > 50)
      assert.ok(!text.includes(SECRET), 'secret in logs')
      assert.ok(!text.includes(u.token), 'token in logs')
      assert.match(text, /"secret":"\[Redacted\]"/)
    })
  })
})
