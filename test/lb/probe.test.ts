import assert from 'node:assert/strict'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {after, before, describe, it} from 'node:test'

import {probe, probeAll} from '../../src/lb/probe.js'

let server: http.Server
let port = 0
before(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/ok') res.end('ok')
    else if (req.url === '/bad') (res.statusCode = 502), res.end('bad gateway')
    else if (req.url === '/slow') setTimeout(() => res.end('late'), 2000)
    else (res.statusCode = 404), res.end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  port = (server.address() as AddressInfo).port
})
after(() => server.close())

describe('deep probe', () => {
  it('200 passes; another status, a refused connection or no answer in time fails', async () => {
    const at = (path: string) => ({address: '127.0.0.1', port, path})
    assert.deepEqual(({...(await probe(at('/ok'), 1000)), ms: 0}), {ok: true, status: 200, ms: 0})
    const bad = await probe(at('/bad'), 1000)
    assert.equal(bad.ok, false)
    assert.equal(bad.error, 'HTTP 502')
    const slow = await probe(at('/slow'), 200)
    assert.equal(slow.error, 'no answer within 200 ms')
    assert.ok(slow.ms < 1000)
    const refused = await probe({address: '127.0.0.1', port: 9, path: '/'}, 1000)
    assert.equal(refused.error, 'connection refused')
  })

  it('every node at once: as long as the slowest, not the sum', async () => {
    const t = Date.now()
    const rs = await probeAll(Array.from({length: 5}, () => ({address: '127.0.0.1', port, path: '/slow'})), 300)
    assert.ok(rs.every((r) => !r.ok))
    assert.ok(Date.now() - t < 1000, `${Date.now() - t} ms`)
  })
})
