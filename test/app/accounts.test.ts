import assert from 'node:assert/strict'
import net from 'node:net'
import {after, before, describe, it} from 'node:test'
import {setTimeout as sleep} from 'node:timers/promises'

import {issueToken, verifyToken} from '../../app/auth/token.js'
import {schemaName, shardOfUsername} from '../../src/shards/placement.js'
import {LOGICAL, SECRET, call, captureLogs, startApp, startAppLab, type AppLab, type RunningApp} from './helpers.js'

/** Tokens (exact spelling, expiry, revocation, refresh) and usernames unique across every shard. */

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** The other three spellings of a token whose last base64url character carries two unused bits. */
function otherSpellings(token: string): string[] {
  const last = B64URL.indexOf(token.at(-1)!)
  return [0, 1, 2, 3].map((k) => (last & ~3) | k).filter((i) => i !== last).map((i) => token.slice(0, -1) + B64URL[i])
}

/** Opens one connection to each app, then writes the request on all of them in one go; the answers, in order. */
async function sendAtOnce(apps: RunningApp[], request: string): Promise<{status: number; body: any}[]> {
  const sockets = await Promise.all(
    apps.map((app) => {
      const {hostname, port} = new URL(app.url)
      return new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect(Number(port), hostname, () => resolve(socket))
        socket.once('error', reject)
      })
    }),
  )
  const answers = sockets.map(
    (socket) =>
      new Promise<string>((resolve, reject) => {
        let text = ''
        socket.on('data', (c: Buffer) => (text += c.toString()))
        socket.on('end', () => resolve(text))
        socket.on('error', reject)
      }),
  )
  for (const socket of sockets) socket.write(request)
  return (await Promise.all(answers)).map((text) => {
    const [head = '', body = ''] = text.split('\r\n\r\n')
    return {status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body: JSON.parse(body)}
  })
}

describe('feed app accounts', {timeout: 240_000}, () => {
  let env: AppLab
  let a: RunningApp
  let b: RunningApp
  const {stream} = captureLogs()
  let seq = 0

  const signUp = async (app = a) => {
    const username = `acct${seq++}_${process.pid}`
    const r = await call(app.url, 'POST', '/users', {body: {username, name: 'Account'}})
    assert.equal(r.status, 201, JSON.stringify(r.body))
    return {id: r.body.user.id as string, token: r.body.token as string, username}
  }
  /** A write that needs the token: follow `target` (idempotent). */
  const write = (app: RunningApp, user: {id: string}, token: string, target: {id: string}) =>
    call(app.url, 'PUT', `/users/${user.id}/following/${target.id}`, {token})
  /** Runs SQL on the server that holds a logical shard. */
  const onShard = (shard: number, text: string, values: unknown[] = []) => a.deps.pools.pool(a.deps.maps.serverOf(shard)).query(text, values)

  before(async () => {
    env = await startAppLab()
    a = await startApp(env.config, stream)
    b = await startApp(env.config, stream) // a second app process on the same data
  })
  after(async () => {
    await b?.stop()
    await a?.stop()
    await env?.lab.stop()
  })

  describe('tokens', () => {
    let target: {id: string}
    before(async () => {
      target = await signUp()
    })

    it('verifies exactly one spelling of a token', async () => {
      const u = await signUp()
      const spellings = otherSpellings(u.token)
      assert.equal(spellings.length, 3)
      for (const forged of spellings) {
        const r = await write(a, u, forged, target)
        assert.equal(r.status, 401, forged)
        assert.equal(r.body.error.message, 'invalid token')
      }
      assert.equal((await write(a, u, u.token, target)).status, 200)
      // Leading zeros or a sign in the claims are other spellings too.
      const [id, gen, exp, mac] = u.token.split('.')
      for (const forged of [`0${id}.${gen}.${exp}.${mac}`, `${id}.0${gen}.${exp}.${mac}`, `${id}.${gen}.+${exp}.${mac}`]) {
        assert.equal((await write(a, u, forged, target)).status, 401, forged)
      }
    })

    it('expires: a token past its time is refused, and a new one lasts app.tokenTtl', async () => {
      const u = await signUp()
      const now = Math.floor(Date.now() / 1000)
      const expired = issueToken(SECRET, {userId: BigInt(u.id), generation: 0, expiresAt: now - 1})
      const r = await write(a, u, expired, target)
      assert.equal(r.status, 401)
      assert.match(r.body.error.message, /expired/)
      assert.equal((await call(a.url, 'POST', `/users/${u.id}/tokens`, {token: expired})).status, 401)
      // The default lifetime is 30 days; a shorter one is honoured.
      const claims = verifyToken(SECRET, u.token)!
      assert.ok(Math.abs(claims.expiresAt - (now + 30 * 86_400)) <= 5, String(claims.expiresAt - now))
      const short = await startApp(env.config, stream, {tokenTtlSeconds: 60})
      try {
        const made = await call(short.url, 'POST', '/users', {body: {username: `short_${process.pid}`, name: 'S'}})
        assert.ok(Math.abs(verifyToken(SECRET, made.body.token)!.expiresAt - (now + 60)) <= 5)
      } finally {
        await short.stop()
      }
    })

    it('refreshes: a holder of a valid token gets a fresh one, for itself only', async () => {
      const u = await signUp()
      const other = await signUp()
      const r = await call(a.url, 'POST', `/users/${u.id}/tokens`, {token: u.token})
      assert.equal(r.status, 201, JSON.stringify(r.body))
      assert.equal(r.body.userId, u.id)
      assert.ok(Date.parse(r.body.expiresAt) > Date.now() + 29 * 86_400_000)
      assert.equal(verifyToken(SECRET, r.body.token)?.userId, BigInt(u.id))
      assert.equal((await write(a, u, r.body.token, target)).status, 200)
      assert.equal((await write(a, u, u.token, target)).status, 200) // the old one is still good until it expires
      assert.equal((await call(a.url, 'POST', `/users/${u.id}/tokens`, {token: other.token})).status, 403)
      assert.equal((await call(a.url, 'POST', `/users/${u.id}/tokens`)).status, 401)
    })

    it('revokes every token of a user, on every app process, and hands out one new token', async () => {
      const u = await signUp()
      const refreshed = (await call(a.url, 'POST', `/users/${u.id}/tokens`, {token: u.token})).body.token as string
      // App b has seen the user's generation, so it would go on trusting its cache without the announcement.
      assert.equal((await write(b, u, u.token, target)).status, 200)
      const r = await call(a.url, 'DELETE', `/users/${u.id}/tokens`, {token: u.token})
      assert.equal(r.status, 200, JSON.stringify(r.body))
      assert.equal(r.body.revoked, true)
      for (const old of [u.token, refreshed]) {
        const refused = await write(a, u, old, target)
        assert.equal(refused.status, 401)
        assert.equal(refused.body.error.message, 'token revoked')
      }
      const t0 = performance.now()
      while ((await write(b, u, u.token, target)).status !== 401) {
        assert.ok(performance.now() - t0 < 1000, 'app b still takes a revoked token after 1 s')
        await sleep(20)
      }
      assert.equal((await write(a, u, r.body.token, target)).status, 200)
      assert.equal((await write(b, u, r.body.token, target)).status, 200)
      assert.equal((await call(a.url, 'DELETE', `/users/${u.id}/tokens`, {token: u.token})).status, 401)
    })

    it('of ten concurrent revokes with one token, on two app processes, one wins; the others get 401', async () => {
      const u = await signUp()
      // Both processes know the user's generation, so every request passes its token check without a query,
      // and all ten are written at once on connections opened before.
      assert.equal((await write(b, u, u.token, target)).status, 200)
      const answers = await sendAtOnce(
        Array.from({length: 10}, (_, i) => i % 2 === 0 ? a : b),
        `DELETE /users/${u.id}/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${u.token}\r\nConnection: close\r\n\r\n`,
      )
      const statuses = answers.map((r) => r.status)
      const won = answers.filter((r) => r.status === 200)
      assert.equal(won.length, 1, statuses.join(' '))
      assert.deepEqual(
        statuses.filter((s) => s !== 200),
        Array(9).fill(401),
      )
      const token = won[0]!.body.token as string
      assert.equal(verifyToken(SECRET, token)?.generation, 1)
      assert.equal((await write(a, u, token, target)).status, 200)
      assert.equal((await write(b, u, token, target)).status, 200)
      assert.equal((await write(a, u, u.token, target)).status, 401)
    })

    it('checks the generation with no query once the user is known, and one query when not', async () => {
      const u = await signUp(a)
      const seen: string[] = []
      for (const app of [a, b]) {
        for (const server of app.deps.pools.serverNames) {
          const pool = app.deps.pools.pool(server)
          const original = pool.query.bind(pool) as (...args: unknown[]) => unknown
          pool.query = ((...args: unknown[]) => {
            const q = args[0] as string | {text: string}
            seen.push(typeof q === 'string' ? q : q.text)
            return original(...args)
          }) as typeof pool.query
        }
      }
      const genQueries = () => seen.filter((t) => t.includes('app:token-gen')).length
      assert.equal((await write(a, u, u.token, target)).status, 200)
      assert.equal((await write(a, u, u.token, target)).status, 200)
      assert.equal(genQueries(), 0, 'the app that made the user knows its generation')
      assert.equal((await write(b, u, u.token, target)).status, 200)
      assert.equal((await write(b, u, u.token, target)).status, 200)
      assert.equal(genQueries(), 1, 'another app reads it once')
    })
  })

  describe('usernames', () => {
    it('are unique across shards, case-insensitively, under many concurrent signups', async () => {
      const name = `Crowd_${process.pid}`
      const spellings = [name, name.toLowerCase(), name.toUpperCase()]
      const tries = 30
      const results = await Promise.all(
        Array.from({length: tries}, (_, i) =>
          call(i % 2 ? a.url : b.url, 'POST', '/users', {body: {username: spellings[i % spellings.length], name: `try ${i}`}}),
        ),
      )
      const statuses = results.map((r) => r.status)
      assert.equal(statuses.filter((s) => s === 201).length, 1, JSON.stringify(statuses))
      assert.equal(statuses.filter((s) => s === 409).length, tries - 1, JSON.stringify(statuses))
      const winner = results.find((r) => r.status === 201)!.body.user
      for (const spelling of spellings) {
        const got = await call(a.url, 'GET', `/users/by-name/${spelling}`)
        assert.equal(got.status, 200)
        assert.equal(got.body.user.id, winner.id)
      }
      assert.match(results.find((r) => r.status === 409)!.body.error.message, /is taken/)
    })

    it('refuses a taken name in any case, whichever shard each new user would land on', async () => {
      const name = `apart_${process.pid}`
      assert.equal((await call(a.url, 'POST', '/users', {body: {username: name, name: 'first'}})).status, 201)
      // Each try gets a new user id, so the tries land on several shards (per-shard uniqueness let them through).
      for (const spelling of [name.toUpperCase(), name, `Apart_${process.pid}`, name.toUpperCase()]) {
        assert.equal((await call(a.url, 'POST', '/users', {body: {username: spelling, name: 'again'}})).status, 409)
      }
    })

    it('releases the claim when making the user fails, so the name stays free', async () => {
      const name = `release_${process.pid}`
      // A user row with this name in every shard's users table (made without a claim) makes the insert fail.
      for (let shard = 0; shard < LOGICAL; shard++) {
        await onShard(shard, `INSERT INTO ${schemaName(shard)}.users (id, username) VALUES ($1, $2)`, [String(9_000_000_000 + shard), name])
      }
      const r = await call(a.url, 'POST', '/users', {body: {username: name, name: 'x'}})
      assert.equal(r.status, 409)
      const nameShard = shardOfUsername(name, LOGICAL)
      const claims = await onShard(nameShard, `SELECT * FROM ${schemaName(nameShard)}.usernames WHERE username = $1`, [name])
      assert.equal(claims.rowCount, 0, 'the claim of the failed signup is gone')
      for (let shard = 0; shard < LOGICAL; shard++) {
        await onShard(shard, `DELETE FROM ${schemaName(shard)}.users WHERE username = $1`, [name])
      }
      assert.equal((await call(a.url, 'POST', '/users', {body: {username: name, name: 'x'}})).status, 201)
    })

    it('takes over a claim abandoned by a signup that died half-way, but not a recent one', async () => {
      const claim = async (name: string, age: string) => {
        const shard = shardOfUsername(name, LOGICAL)
        await onShard(shard, `INSERT INTO ${schemaName(shard)}.usernames (username, user_id, claimed_at) VALUES ($1, 987654321, now() - $2::interval)`, [
          name,
          age,
        ])
      }
      const old = `abandoned_${process.pid}`
      const recent = `inflight_${process.pid}`
      await claim(old, '10 minutes')
      await claim(recent, '1 second')
      assert.equal((await call(a.url, 'GET', `/users/by-name/${old}`)).status, 404)
      assert.equal((await call(a.url, 'POST', '/users', {body: {username: old, name: 'x'}})).status, 201)
      assert.equal((await call(a.url, 'GET', `/users/by-name/${old}`)).status, 200)
      assert.equal((await call(a.url, 'POST', '/users', {body: {username: recent, name: 'x'}})).status, 409)
    })

    it('looks names up by the same placement: 404 for nobody, 400 for a bad name', async () => {
      const u = await signUp()
      const got = await call(b.url, 'GET', `/users/by-name/${u.username.toUpperCase()}`)
      assert.equal(got.status, 200)
      assert.equal(got.body.user.id, u.id)
      assert.equal((await call(a.url, 'GET', '/users/by-name/nobody_here')).status, 404)
      for (const bad of ['a', 'has%20space', 'x'.repeat(31), 'semi;colon']) {
        assert.equal((await call(a.url, 'GET', `/users/by-name/${bad}`)).status, 400, bad)
      }
    })
  })
})
