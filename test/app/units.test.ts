import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {issueToken, verifyToken} from '../../app/auth/token.js'
import {parseAppSection, parseBytes, parseSeconds} from '../../app/config.js'
import {cdnUrl} from '../../app/data/photos.js'
import {SingleFlight} from '../../app/data/single-flight.js'
import {createPhotoBody, feedQuery, id} from '../../app/http/schemas.js'
import {UserError} from '../../src/errors.js'
import {captureLogs} from './helpers.js'
import {createLogger} from '../../app/logger.js'

const SECRET = 'unit-secret-abcdefghijklmnop'

describe('app config section', () => {
  it('fills defaults and takes the secret from the environment first', () => {
    const s = parseAppSection({cdnBase: 'https://cdn.example.com', secret: 'file-secret-0123456789'}, 'f', {FEEDOPS_APP_SECRET: 'env-secret-0123456789'})
    assert.equal(s.secret, 'env-secret-0123456789')
    assert.equal(s.port, 8080)
    assert.equal(s.host, '127.0.0.1')
    assert.equal(s.freezeWaitMs, 2000)
    assert.equal(s.bodyLimitBytes, 16 * 1024)
    assert.equal(s.feedStrategy, 'per-server')
    assert.equal(parseAppSection({cdnBase: 'http://c', secret: 'file-secret-0123456789'}, 'f', {}).secret, 'file-secret-0123456789')
  })

  it('rejects unknown keys, bad types and a missing or short secret without echoing it', () => {
    const bad = (raw: unknown, re: RegExp, env: NodeJS.ProcessEnv = {}) =>
      assert.throws(() => parseAppSection(raw, 'f: environments.x', env), (e: unknown) => e instanceof UserError && re.test(e.message))
    bad({cdnBase: 'https://c', secret: 'x'.repeat(20), prot: 1}, /unknown key prot/)
    bad({cdnBase: 'ftp://c', secret: 'x'.repeat(20)}, /cdnBase/)
    bad({cdnBase: 'https://c', secret: 'x'.repeat(20), port: 70000}, /port/)
    bad({cdnBase: 'https://c', secret: 'x'.repeat(20), bodyLimit: 'lots'}, /bodyLimit/)
    bad({cdnBase: 'https://c'}, /no secret/)
    assert.throws(
      () => parseAppSection({cdnBase: 'https://c'}, 'f', {FEEDOPS_APP_SECRET: 'short-s3cr3t'}),
      (e: unknown) => e instanceof UserError && !e.message.includes('short-s3cr3t'),
    )
  })

  it('gives tokens 30 days unless app.tokenTtl says otherwise', () => {
    const base = {cdnBase: 'https://c', secret: 'x'.repeat(20)}
    assert.equal(parseAppSection(base, 'f', {}).tokenTtlSeconds, 30 * 86_400)
    assert.equal(parseAppSection({...base, tokenTtl: '12h'}, 'f', {}).tokenTtlSeconds, 12 * 3600)
    assert.equal(parseAppSection({...base, tokenTtl: 90}, 'f', {}).tokenTtlSeconds, 90)
    assert.equal(parseSeconds('15m'), 900)
    for (const bad of ['forever', '0d', -5, '1w']) {
      assert.throws(() => parseAppSection({...base, tokenTtl: bad}, 'f', {}), (e: unknown) => e instanceof UserError && /tokenTtl/.test(e.message))
    }
  })

  it('parses sizes', () => {
    assert.equal(parseBytes('4kb'), 4096)
    assert.equal(parseBytes('1mb'), 1048576)
    assert.equal(parseBytes(10), 10)
  })
})

describe('user tokens', () => {
  it('verifies its own tokens and nothing else', () => {
    const t = issueToken(SECRET, {userId: 42n, generation: 0, expiresAt: 4e9})
    assert.deepEqual(verifyToken(SECRET, t), {userId: 42n, generation: 0, expiresAt: 4e9})
    assert.equal(verifyToken('another-secret-abcdefghij', t), null)
    assert.equal(verifyToken(SECRET, t.replace(/^42\./, '43.')), null)
    assert.equal(verifyToken(SECRET, `${t}x`), null)
    assert.equal(verifyToken(SECRET, ''), null)
    assert.equal(verifyToken(SECRET, '42'), null)
    assert.equal(verifyToken(SECRET, issueToken(SECRET, {userId: 1n << 63n, generation: 0, expiresAt: 4e9})), null)
  })

  it('verifies one spelling only, and every claim is signed', () => {
    const t = issueToken(SECRET, {userId: 42n, generation: 3, expiresAt: 4e9})
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const last = alphabet.indexOf(t.at(-1)!)
    const accepted = [0, 1, 2, 3].map((k) => t.slice(0, -1) + alphabet[(last & ~3) | k]).filter((s) => verifyToken(SECRET, s) !== null)
    assert.deepEqual(accepted, [t])
    assert.equal(verifyToken(SECRET, t.replace('.3.', '.4.')), null)
    assert.equal(verifyToken(SECRET, t.replace('.4000000000.', '.4000000001.')), null)
  })
})

describe('input schemas', () => {
  it('parses ids as bigint and rejects the rest', () => {
    assert.equal(id.parse('9223372036854775807'), 9223372036854775807n)
    for (const bad of ['0', '-3', 'x', '9223372036854775808', '', ' 1 2']) assert.equal(id.safeParse(bad).success, false, bad)
    for (const bad of [' 12', '12 ', '012', '+12', '0x10', '1e2', '12.0', '1'.repeat(20)]) assert.equal(id.safeParse(bad).success, false, bad)
  })
  it('checks S3 keys and feed paging', () => {
    assert.equal(createPhotoBody.safeParse({s3Key: 'a/b/c.jpg'}).success, true)
    for (const k of ['/a', 'a//b', 'a/../b', 'a b', '']) assert.equal(createPhotoBody.safeParse({s3Key: k}).success, false, k)
    assert.deepEqual(feedQuery.parse({}), {limit: 20})
    assert.deepEqual(feedQuery.parse({limit: '5', before: '77'}), {limit: 5, before: 77n})
    for (const bad of ['0', '101', '0x10', '1e2', '05', ' 5', '5.0', '']) assert.equal(feedQuery.safeParse({limit: bad}).success, false, bad)
  })
  it('builds CDN URLs with escaped segments', () => {
    assert.equal(cdnUrl('https://cdn.x/p/', "a/it's.jpg"), "https://cdn.x/p/a/it's.jpg")
    assert.equal(cdnUrl('https://cdn.x', 'a/(1).jpg'), 'https://cdn.x/a/(1).jpg')
  })
})

describe('logger', () => {
  it('redacts secrets, tokens and authorization headers wherever they are passed', () => {
    const {stream, logs} = captureLogs()
    const log = createLogger({level: 'info'}, stream)
    const token = issueToken(SECRET, {userId: 7n, generation: 0, expiresAt: 4e9})
    log.info({secret: SECRET}, 'a')
    log.info({app: {secret: SECRET, port: 1}}, 'b')
    log.info({config: {app: {secret: SECRET}}}, 'c')
    log.child({reqId: 'r'}).info({token, headers: {authorization: `Bearer ${token}`}}, 'd')
    log.info({req: {headers: {authorization: `Bearer ${token}`}}}, 'e')
    assert.equal(logs.lines.length, 5)
    assert.ok(!logs.text().includes(SECRET))
    assert.ok(!logs.text().includes(token))
    assert.equal(JSON.parse(logs.lines[1]!).app.port, 1)
  })
})

describe('single flight (feed request collapsing)', () => {
  it('shares one run among concurrent callers of a key, runs again once it settled, and shares failures', async () => {
    const flight = new SingleFlight<string>()
    let runs = 0
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const work = async () => {
      const n = ++runs
      await gate
      return `page ${n}`
    }
    const joined = [flight.run('u1', work), flight.run('u1', work), flight.run('u1', work)]
    const other = flight.run('u2', work)
    assert.equal(flight.size, 2)
    release()
    assert.deepEqual(await Promise.all(joined), ['page 1', 'page 1', 'page 1'])
    assert.equal(await other, 'page 2')
    assert.equal(flight.size, 0)
    assert.equal(await flight.run('u1', work), 'page 3') // nothing is cached after a run ends

    let failing = 0
    const fail = async () => {
      failing++
      throw new Error('shard down')
    }
    const results = await Promise.allSettled([flight.run('u1', fail), flight.run('u1', fail)])
    assert.equal(failing, 1)
    assert.ok(results.every((r) => r.status === 'rejected' && (r.reason as Error).message === 'shard down'))
    assert.equal(await flight.run('u1', work), 'page 4')
  })
})

