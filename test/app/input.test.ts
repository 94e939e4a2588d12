import assert from 'node:assert/strict'
import net from 'node:net'
import {after, before, describe, it} from 'node:test'
import {brotliCompressSync, deflateSync, gzipSync} from 'node:zlib'

import pg from 'pg'

import {call, captureLogs, startApp, startAppLab, type AppLab, type RunningApp} from './helpers.js'

/** Input an attacker sends: NUL in text, bodies that do not decompress, oversized heads, ids in odd spellings. */

/** Sends raw bytes and returns the status and body of the answer (the server closes the connection). */
async function rawRequest(url: string, request: string): Promise<{status: number; headers: string; body: string}> {
  const {hostname, port} = new URL(url)
  const socket = net.connect(Number(port), hostname)
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.end(request)
  await new Promise<void>((resolve, reject) => {
    socket.on('close', () => resolve())
    socket.on('error', reject)
  })
  const text = Buffer.concat(chunks).toString('utf8')
  const [head = '', body = ''] = text.split('\r\n\r\n')
  return {status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head, body}
}

describe('feed app input', {timeout: 240_000}, () => {
  let env: AppLab
  let running: RunningApp
  let url: string
  let catalog: pg.Client
  const {stream} = captureLogs()
  let user: {id: string; token: string}

  const userIdsUsed = async () =>
    (await catalog.query<{v: string}>('SELECT CASE WHEN is_called THEN last_value ELSE 0 END::text AS v FROM user_id_seq')).rows[0]!.v

  before(async () => {
    env = await startAppLab()
    running = await startApp(env.config, stream)
    url = running.url
    catalog = new pg.Client({connectionString: env.config.shards.catalog})
    await catalog.connect()
    const r = await call(url, 'POST', '/users', {body: {username: `input_${process.pid}`, name: 'Input'}})
    assert.equal(r.status, 201)
    user = {id: r.body.user.id, token: r.body.token}
  })
  after(async () => {
    await catalog?.end()
    await running?.stop()
    await env?.lab.stop()
  })

  describe('NUL in text', () => {
    it('is a 400 naming the field, and a refused signup uses no user id', async () => {
      const before = await userIdsUsed()
      for (const [field, body] of [
        ['name', {username: 'nul_name', name: 'a\u0000b'}],
        ['username', {username: 'nul\u0000user', name: 'x'}],
      ] as const) {
        const r = await call(url, 'POST', '/users', {body})
        assert.equal(r.status, 400, JSON.stringify(r.body))
        assert.match(r.body.error.message, new RegExp(`^${field}: `))
      }
      assert.equal(await userIdsUsed(), before)
      assert.equal((await call(url, 'GET', '/users/by-name/nul_name')).status, 404)
    })

    it('is a 400 in a caption, and in ids of the path and the query', async () => {
      const r = await call(url, 'POST', '/photos', {token: user.token, body: {caption: 'x\u0000', s3Key: 'nul.jpg'}})
      assert.equal(r.status, 400, JSON.stringify(r.body))
      assert.match(r.body.error.message, /^caption: .*NUL/)
      assert.equal((await call(url, 'GET', '/users/1%00')).status, 400)
      assert.equal((await call(url, 'GET', `/feed/${user.id}?before=1%00`)).status, 400)
    })
  })

  describe('compressed bodies', () => {
    const body = JSON.stringify({username: `zipped_${process.pid}`, name: 'Zip'})
    it('reads a gzip body', async () => {
      const res = await fetch(`${url}/users`, {
        method: 'POST',
        headers: {'content-type': 'application/json', 'content-encoding': 'gzip'},
        body: gzipSync(body),
      })
      assert.equal(res.status, 201)
    })

    for (const [encoding, bytes] of [
      ['gzip', gzipSync(body).subarray(0, 20)],
      ['gzip', Buffer.from('this is not gzip at all')],
      ['deflate', Buffer.concat([deflateSync(body).subarray(0, 8), Buffer.from('junk')])],
      ['br', Buffer.concat([Buffer.from([0xff, 0xff]), brotliCompressSync(body)])],
    ] as const) {
      it(`answers 400 for a ${encoding} body that does not decompress (${bytes.length} bytes)`, async () => {
        const res = await fetch(`${url}/users`, {
          method: 'POST',
          headers: {'content-type': 'application/json', 'content-encoding': encoding},
          body: bytes,
        })
        assert.equal(res.status, 400)
        assert.match(((await res.json()) as {error: {message: string}}).error.message, new RegExp(`does not decompress.*${encoding}`))
      })
    }

    it('answers 413 for a small gzip body that inflates past the limit', async () => {
      const bomb = gzipSync(JSON.stringify({username: 'bomb_user', name: 'x'.repeat(1_000_000)}))
      assert.ok(bomb.length < 4096)
      const res = await fetch(`${url}/users`, {method: 'POST', headers: {'content-type': 'application/json', 'content-encoding': 'gzip'}, body: bomb})
      assert.equal(res.status, 413)
    })

    it('checks the token of a write before reading its body', async () => {
      const broken = {'content-type': 'application/json', 'content-encoding': 'gzip'}
      const garbage = Buffer.from('not gzip')
      const anonymous = await fetch(`${url}/photos`, {method: 'POST', headers: broken, body: garbage})
      assert.equal(anonymous.status, 401)
      const badJson = await call(url, 'POST', '/photos', {raw: '{"s3Key": ', headers: {'content-type': 'application/json'}})
      assert.equal(badJson.status, 401)
      const signedIn = await fetch(`${url}/photos`, {method: 'POST', headers: {...broken, authorization: `Bearer ${user.token}`}, body: garbage})
      assert.equal(signedIn.status, 400)
    })
  })

  describe("what Node's HTTP parser refuses", () => {
    it('answers a header block or URL over the limit with 431 in JSON', async () => {
      for (const request of [
        `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
        `GET /users/1?pad=${'b'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      ]) {
        const r = await rawRequest(url, request)
        assert.equal(r.status, 431)
        assert.match(r.headers, /content-type: application\/json/i)
        assert.match(JSON.parse(r.body).error.message, /larger than the server accepts/)
      }
    })

    it('answers a request that is not HTTP with 400 in JSON', async () => {
      const r = await rawRequest(url, 'HELLO\r\n\r\n')
      assert.equal(r.status, 400)
      assert.equal(typeof JSON.parse(r.body).error.message, 'string')
    })
  })

  describe('ids and limits: one strict decimal form', () => {
    for (const spelling of ['%2012', '12%20', '012', '+12', '0x10', '1e2', '12.0', '%E2%80%8912']) {
      it(`answers 400 for the path id ${spelling}`, async () => {
        const r = await call(url, 'GET', `/users/${spelling}`)
        assert.equal(r.status, 400, JSON.stringify(r.body))
        assert.match(r.body.error.message, /^id: /)
      })
    }

    it('takes the plain spelling of an id', async () => {
      assert.equal((await call(url, 'GET', `/users/${user.id}`)).status, 200)
      assert.equal((await call(url, 'GET', `/users/0${user.id}`)).status, 400)
    })

    for (const q of ['limit=0x10', 'limit=1e2', 'limit=010', 'limit=%205', 'limit=5.0', 'limit=1000', 'limit=', 'before=012', 'before=%2099']) {
      it(`answers 400 for the feed query ${q}`, async () => {
        const r = await call(url, 'GET', `/feed/${user.id}?${q}`)
        assert.equal(r.status, 400, JSON.stringify(r.body))
      })
    }

    it('takes limit 1 to 100', async () => {
      for (const q of ['limit=1', 'limit=100', 'limit=20&before=99']) assert.equal((await call(url, 'GET', `/feed/${user.id}?${q}`)).status, 200, q)
    })
  })
})
