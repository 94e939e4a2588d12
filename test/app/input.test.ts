import assert from 'node:assert/strict'
import net from 'node:net'
import {after, before, describe, it} from 'node:test'
import {brotliCompressSync, deflateSync, gzipSync} from 'node:zlib'

import pg from 'pg'

import {issueToken} from '../../app/auth/token.js'
import {SECRET, call as callApp, captureLogs, startApp, startAppLab, type AppLab, type RunningApp} from './helpers.js'

/**
 * Input an attacker sends: NUL in text, bodies that do not decompress, oversized heads, ids in odd spellings,
 * odd methods, heads Node answers by itself, bodies too large or too short, forged expiries. Every answer is
 * counted, and the last test checks that none of them was a 5xx.
 */

interface RawAnswer {
  status: number
  headers: string
  body: string
}

/** Splits what came back into status, head and body (the body cut at its Content-Length). */
function parseAnswer(bytes: Buffer): RawAnswer {
  const text = bytes.toString('utf8')
  const at = text.indexOf('\r\n\r\n')
  const head = at < 0 ? text : text.slice(0, at)
  const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1]
  const rest = at < 0 ? '' : text.slice(at + 4)
  return {status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]), headers: head, body: length === undefined ? rest : rest.slice(0, Number(length))}
}

/** Whether a complete answer (head and Content-Length body) has arrived. */
function complete(bytes: Buffer): boolean {
  const at = bytes.indexOf('\r\n\r\n')
  if (at < 0) return false
  const length = /\r\ncontent-length: *(\d+)/i.exec(bytes.subarray(0, at).toString('latin1'))?.[1]
  return length !== undefined && bytes.length - at - 4 >= Number(length)
}

/** Sends raw bytes and returns the first answer: once it is complete, or when the server closes. */
async function rawRequest(url: string, request: string | Buffer, opts: {end?: boolean} = {}): Promise<RawAnswer & {ms: number}> {
  const {hostname, port} = new URL(url)
  const started = performance.now()
  const socket = net.connect(Number(port), hostname)
  const chunks: Buffer[] = []
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      if (complete(Buffer.concat(chunks))) resolve()
    })
    socket.on('close', () => resolve())
    socket.on('error', reject)
    if (opts.end === false) socket.write(request)
    else socket.end(request)
  })
  socket.destroy()
  return {...parseAnswer(Buffer.concat(chunks)), ms: performance.now() - started}
}

/**
 * Sends a request head, then `bodyBytes` of body as fast as the server takes them (chunked when asked), and
 * reads whatever comes back meanwhile, as a client that sends its whole upload before looking at the answer
 * would. A write that fails (the server closed) ends the sending; the answer is what was read by then.
 */
async function upload(address: {host: string; port: number}, head: string, bodyBytes: number, chunked: boolean): Promise<RawAnswer & {sent: number}> {
  const socket = net.connect(address.port, address.host)
  const chunks: Buffer[] = []
  let sent = 0
  socket.on('data', (c: Buffer) => chunks.push(c))
  await new Promise<void>((resolve) => {
    socket.on('close', () => resolve())
    socket.on('error', () => resolve())
    const piece = Buffer.alloc(64 * 1024, 'x')
    const frame = chunked ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece
    socket.write(head)
    const pump = () => {
      while (!socket.destroyed && sent < bodyBytes) {
        sent += piece.length
        if (!socket.write(frame)) return void socket.once('drain', pump)
      }
      if (!socket.destroyed && chunked) socket.write('0\r\n\r\n')
    }
    pump()
  })
  return {...parseAnswer(Buffer.concat(chunks)), sent}
}

/** The app's error shape: a JSON body {error: {message}} with a non-empty message. */
function assertErrorShape(r: {headers: string; body: string}): string {
  assert.match(r.headers, /\r\ncontent-type: application\/json/i, r.headers)
  const message = (JSON.parse(r.body) as {error: {message: unknown}}).error.message
  assert.equal(typeof message, 'string')
  assert.ok((message as string).length > 0)
  return message as string
}

describe('feed app input', {timeout: 240_000}, () => {
  let env: AppLab
  let running: RunningApp
  /** The same app with app.requestTimeoutMs at its floor (1 s), for the requests that never finish arriving. */
  let impatient: RunningApp
  let url: string
  /** The lab's NGINX node, in front of the app host the app listens on. */
  let nginx: {host: string; port: number}
  let catalog: pg.Client
  const {stream, logs} = captureLogs()
  let user: {id: string; token: string}

  // Every status this suite is answered with, for the last test.
  const statuses: number[] = []
  const call = async (...args: Parameters<typeof callApp>) => {
    const r = await callApp(...args)
    statuses.push(r.status)
    return r
  }
  const fetch = async (...args: Parameters<typeof globalThis.fetch>) => {
    const res = await globalThis.fetch(...args)
    statuses.push(res.status)
    return res
  }
  const raw = async (...args: Parameters<typeof rawRequest>) => {
    const r = await rawRequest(...args)
    statuses.push(r.status)
    return r
  }
  const send = async (...args: Parameters<typeof upload>) => {
    const r = await upload(...args)
    statuses.push(r.status)
    return r
  }

  const userIdsUsed = async () =>
    (await catalog.query<{v: string}>('SELECT CASE WHEN is_called THEN last_value ELSE 0 END::text AS v FROM user_id_seq')).rows[0]!.v

  before(async () => {
    env = await startAppLab({}, {}, {hosts: 1, nginx: 1})
    const host = env.lab.layout.hosts[0]!
    running = await startApp(env.config, stream, {}, {host: host.address, port: host.httpPort})
    impatient = await startApp(env.config, stream, {requestTimeoutMs: 1000})
    nginx = {host: env.lab.layout.nginx[0]!.address, port: env.lab.layout.nginx[0]!.httpPort}
    url = running.url
    catalog = new pg.Client({connectionString: env.config.shards.catalog})
    await catalog.connect()
    const r = await call(url, 'POST', '/users', {body: {username: `input_${process.pid}`, name: 'Input'}})
    assert.equal(r.status, 201)
    user = {id: r.body.user.id, token: r.body.token}
  })
  after(async () => {
    await catalog?.end()
    await impatient?.stop()
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
        const r = await raw(url, request)
        assert.equal(r.status, 431)
        assert.match(r.headers, /content-type: application\/json/i)
        assert.match(JSON.parse(r.body).error.message, /larger than the server accepts/)
      }
    })

    it('answers a request that is not HTTP with 400 in JSON', async () => {
      const r = await raw(url, 'HELLO\r\n\r\n')
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

  describe('methods: a 405 with the Allow of the path, or a 404 or 400, never a 501', () => {
    const allowOf = (headers: string) =>
      new Set(
        (/\r\nallow: *([^\r]*)/i.exec(headers)?.[1] ?? '')
          .split(',')
          .map((m) => m.trim())
          .filter(Boolean),
      )

    for (const method of ['TRACE', 'PROPFIND', 'MKCOL', 'LOCK', 'SEARCH', 'PURGE', 'PATCH']) {
      it(`answers ${method} /users/:id with 405, Allow: the methods of that path, logged as a client error`, async () => {
        const r = await raw(url, `${method} /users/${user.id} HTTP/1.1\r\nHost: x\r\nX-Request-Id: method-${method}\r\n\r\n`)
        assert.equal(r.status, 405, r.headers)
        assert.deepEqual(allowOf(r.headers), new Set(['HEAD', 'GET', 'OPTIONS']))
        assert.match(assertErrorShape(r), new RegExp(`^${method} is not allowed on /users/${user.id}`))
        const line = logs.lines.map((l) => JSON.parse(l) as {reqId?: string; msg: string; level: number; status?: number}).find((l) => l.reqId === `method-${method}` && l.msg === 'request')
        assert.equal(line?.status, 405)
        assert.equal(line?.level, 30, 'logged at info, not as a server error')
      })
    }

    it('names the methods of each path: POST on /photos, PUT and DELETE on a like', async () => {
      assert.deepEqual(allowOf((await raw(url, 'TRACE /photos HTTP/1.1\r\nHost: x\r\n\r\n')).headers), new Set(['POST', 'OPTIONS']))
      const like = await raw(url, 'PROPFIND /photos/1/likes HTTP/1.1\r\nHost: x\r\n\r\n')
      assert.equal(like.status, 405)
      assert.deepEqual(allowOf(like.headers), new Set(['PUT', 'DELETE', 'OPTIONS']))
      const options = await raw(url, `OPTIONS /users/${user.id} HTTP/1.1\r\nHost: x\r\n\r\n`)
      assert.equal(options.status, 204)
      assert.deepEqual(allowOf(options.headers), new Set(['HEAD', 'GET', 'OPTIONS']))
    })

    it('answers an odd method on a path no route serves with 404, and one Node does not know with 400', async () => {
      const nowhere = await raw(url, 'TRACE /nope HTTP/1.1\r\nHost: x\r\n\r\n')
      assert.equal(nowhere.status, 404)
      assert.match(assertErrorShape(nowhere), /^no route for TRACE \/nope/)
      const unknown = await raw(url, `FROB /users/${user.id} HTTP/1.1\r\nHost: x\r\n\r\n`)
      assert.equal(unknown.status, 400)
      assert.match(assertErrorShape(unknown), /method/)
    })
  })

  describe("Node's own answers, in the JSON error shape", () => {
    it('answers an HTTP/1.1 request without Host with 400 in JSON (HTTP/1.0 needs none)', async () => {
      const r = await raw(url, 'GET /healthz HTTP/1.1\r\n\r\n')
      assert.equal(r.status, 400)
      assert.match(assertErrorShape(r), /Host/)
      assert.equal((await raw(url, 'GET /healthz HTTP/1.0\r\n\r\n')).status, 200)
    })

    it('answers an Expect it does not meet with 417 in JSON, also when the body follows at once', async () => {
      const r = await raw(url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\n\r\n')
      assert.equal(r.status, 417)
      assert.match(assertErrorShape(r), /100-continue/)
      const body = JSON.stringify({username: 'expect_user', name: 'E'})
      const withBody = await raw(
        url,
        `POST /users HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      )
      assert.equal(withBody.status, 417)
      assert.equal((await call(url, 'GET', '/users/by-name/expect_user')).status, 404)
    })

    it('answers Expect: 100-continue with 413 and no 100 when the declared body is over the limit, else asks for it', async () => {
      const head = (length: number) =>
        `POST /users HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`
      const refused = await raw(url, head(10 * 1024 * 1024), {end: false})
      assert.equal(refused.status, 413, refused.headers)
      assert.match(assertErrorShape(refused), /larger than 4096 bytes/)
      const {hostname, port} = new URL(url)
      const socket = net.connect(Number(port), hostname)
      let text = ''
      socket.on('data', (c: Buffer) => (text += c.toString()))
      const body = JSON.stringify({username: `continue_${process.pid}`, name: 'C'})
      socket.write(head(body.length))
      while (!text.includes('\r\n\r\n')) await new Promise((resolve) => setTimeout(resolve, 10))
      assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\n$/)
      socket.write(body)
      while (!/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 \d{3}/.test(text)) await new Promise((resolve) => setTimeout(resolve, 10))
      socket.destroy()
      const status = Number(/\r\n\r\nHTTP\/1\.1 (\d{3})/.exec(text)![1])
      statuses.push(status)
      assert.equal(status, 201)
    })

    it('answers CONNECT with 400 in JSON instead of closing without a word', async () => {
      const r = await raw(url, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
      assert.equal(r.status, 400)
      assert.match(assertErrorShape(r), /not a proxy/)
    })

    it('answers a body shorter than its Content-Length with 408 once app.requestTimeoutMs has passed', async () => {
      const r = await raw(impatient.url, 'POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user', {end: false})
      assert.equal(r.status, 408)
      assert.match(assertErrorShape(r), /not received in time/)
      // requestTimeoutMs, checked every quarter of it; the rest is room for a loaded machine.
      assert.ok(r.ms >= 1000 && r.ms < 5000, `${Math.round(r.ms)} ms`)
      // The bound is on a request on its way, not on a kept-alive connection resting between requests.
      const {hostname, port} = new URL(impatient.url)
      const socket = net.connect(Number(port), hostname)
      const answers: string[] = []
      socket.on('data', (c: Buffer) => answers.push(c.toString()))
      const ask = async () => {
        const had = answers.length
        socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
        while (answers.length === had) await new Promise((resolve) => setTimeout(resolve, 10))
        return answers.at(-1)!
      }
      assert.match(await ask(), /^HTTP\/1\.1 200/)
      await new Promise((resolve) => setTimeout(resolve, 1600))
      assert.match(await ask(), /^HTTP\/1\.1 200/)
      socket.destroy()
    })
  })

  describe('bodies over the limit: a 413 the client reads', () => {
    const photoHead = (length: number | 'chunked') =>
      `POST /photos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.token}\r\nContent-Type: application/json\r\n` +
      `${length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`}\r\n\r\n`
    const direct = () => ({host: new URL(url).hostname, port: Number(new URL(url).port)})
    const TEN_MIB = 10 * 1024 * 1024

    it('answers a declared 10 MiB POST /photos with 413 and Connection: close, read by the client every time', async () => {
      const tries = await Promise.all(Array.from({length: 6}, () => send(direct(), photoHead(TEN_MIB), TEN_MIB, false)))
      for (const [attempt, r] of tries.entries()) {
        assert.equal(r.status, 413, `attempt ${attempt}: ${r.headers || 'no answer'}`)
        assert.match(r.headers, /\r\nconnection: close/i)
        assert.match(assertErrorShape(r), /larger than 4096 bytes/)
      }
    })

    it('answers a 20 MB chunked body with 413, read by the client', async () => {
      const tries = await Promise.all(Array.from({length: 3}, () => send(direct(), photoHead('chunked'), 20_000_000, true)))
      for (const [attempt, r] of tries.entries()) {
        assert.equal(r.status, 413, `attempt ${attempt}: ${r.headers || 'no answer'}`)
        assertErrorShape(r)
      }
    })

    it('gives the same answers through NGINX: its own 413 past 1 MiB, the app’s below, in one JSON shape', async () => {
      const KIB_900 = 900 * 1024
      const attempt = async () => {
        const declared = await send(nginx, photoHead(TEN_MIB), TEN_MIB, false)
        assert.equal(declared.status, 413, declared.headers || 'no answer')
        assert.match(assertErrorShape(declared), /larger than 1048576 bytes/)
        const chunked = await send(nginx, photoHead('chunked'), 20_000_000, true)
        assert.equal(chunked.status, 413, chunked.headers || 'no answer')
        assert.match(assertErrorShape(chunked), /larger than 1048576 bytes/)
        // Under nginx's limit and over the app's: nginx sends it all to the app, which answers 413 at its head.
        const passed = await send(nginx, photoHead(KIB_900), KIB_900, false)
        assert.equal(passed.status, 413, passed.headers || 'no answer')
        assert.match(assertErrorShape(passed), /larger than 4096 bytes/)
      }
      await Promise.all([attempt(), attempt(), attempt()])
    })
  })

  describe('text, codings and tokens', () => {
    it('takes Content-Encoding in any case (GZIP, Gzip, x-gzip)', async () => {
      for (const [i, coding] of ['GZIP', ' Gzip', 'x-gzip'].entries()) {
        const res = await fetch(`${url}/users`, {
          method: 'POST',
          headers: {'content-type': 'application/json', 'content-encoding': coding},
          body: gzipSync(JSON.stringify({username: `coding${i}_${process.pid}`, name: 'Z'})),
        })
        assert.equal(res.status, 201, `${coding}: ${await res.text()}`)
      }
    })

    it('answers a name and a caption with a lone surrogate as Postgres stored them', async () => {
      const made = await call(url, 'POST', '/users', {raw: `{"username": "lone_${process.pid}", "name": "a\\ud800b"}`, headers: {'content-type': 'application/json'}})
      assert.equal(made.status, 201, JSON.stringify(made.body))
      const stored = await call(url, 'GET', `/users/${made.body.user.id}`)
      assert.equal(stored.body.user.name, 'a\ufffdb')
      assert.deepEqual(made.body.user, stored.body.user)
      const photo = await call(url, 'POST', '/photos', {raw: '{"s3Key": "lone.jpg", "caption": "x\\udc00y"}', token: made.body.token, headers: {'content-type': 'application/json'}})
      assert.equal(photo.status, 201, JSON.stringify(photo.body))
      assert.deepEqual(photo.body.photo, (await call(url, 'GET', `/photos/${photo.body.photo.id}`)).body.photo)
    })

    it('refuses a well-signed token whose expiry lies further out than app.tokenTtl from now', async () => {
      const now = Math.floor(Date.now() / 1000)
      const ttl = 30 * 86_400
      for (const expiresAt of [999_999_999_999, now + ttl + 3600]) {
        const forged = issueToken(SECRET, {userId: BigInt(user.id), generation: 0, expiresAt})
        const r = await call(url, 'POST', `/users/${user.id}/tokens`, {token: forged})
        assert.equal(r.status, 401, String(expiresAt))
        assert.equal(r.body.error.message, 'invalid token')
      }
      const fair = issueToken(SECRET, {userId: BigInt(user.id), generation: 0, expiresAt: now + ttl})
      assert.equal((await call(url, 'POST', `/users/${user.id}/tokens`, {token: fair})).status, 201)
    })

    it('answers the feed of a user who does not exist with 404, as /users/:id does', async () => {
      const nobody = '9223372036854775807'
      for (const path of [`/feed/${nobody}`, `/users/${nobody}`]) {
        const r = await call(url, 'GET', path)
        assert.equal(r.status, 404, path)
        assert.match(r.body.error.message, /not found/)
      }
      assert.deepEqual((await call(url, 'GET', `/feed/${user.id}`)).body, {items: [], next: null})
    })
  })

  it('answered none of the requests above with a 5xx, and logged none of them as an error', (t) => {
    const failed = statuses.filter((s) => !(s >= 200 && s < 500))
    t.diagnostic(`${statuses.length} answers, ${failed.length} not under 500`)
    assert.ok(statuses.length >= 93, String(statuses.length))
    assert.deepEqual(failed, [])
    const errors = logs.lines.filter((l) => (JSON.parse(l) as {level: number}).level >= 50)
    assert.deepEqual(errors, [])
  })
})
