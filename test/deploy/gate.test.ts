import assert from 'node:assert/strict'
import http from 'node:http'
import net, {type AddressInfo} from 'node:net'
import {after, before, describe, it} from 'node:test'

import {askOver, gate, gateFailure, parseAnswer, type HealthAnswer} from '../../src/deploy/gate.js'

/** A gate driven by a scripted sequence of answers and a fake clock. */
function scripted(answers: HealthAnswer[]) {
  let t = 0
  let asked = 0
  return {
    ask: async () => answers[Math.min(asked++, answers.length - 1)]!,
    opts: {now: () => t, sleep: async (ms: number) => void (t += ms)},
    asked: () => asked,
  }
}

describe('health gate', () => {
  it('passes on the first 200 reporting the release, without waiting when no stable window is asked', async () => {
    const s = scripted([{status: 0, error: 'refused'}, {status: 503, release: 'R2'}, {status: 200, release: 'R1', pid: 1}, {status: 200, release: 'R2', pid: 7}])
    const o = await gate(s.ask, {want: 'R2', timeoutMs: 5000, stableMs: 0, ...s.opts})
    assert.equal(o.ok, true)
    assert.equal(s.asked(), 4)
    assert.equal(o.ms, 300)
  })

  it('the canary must still answer from the same process stableMs later', async () => {
    const crashed = scripted([{status: 200, release: 'R2', pid: 7}, {status: 0, error: 'refused'}])
    assert.equal((await gate(crashed.ask, {want: 'R2', timeoutMs: 5000, stableMs: 1000, ...crashed.opts})).ok, false)
    const restarted = scripted([{status: 200, release: 'R2', pid: 7}, {status: 200, release: 'R2', pid: 8}])
    assert.equal((await gate(restarted.ask, {want: 'R2', timeoutMs: 5000, stableMs: 1000, ...restarted.opts})).ok, false)
    const stable = scripted([{status: 200, release: 'R2', pid: 7}])
    assert.deepEqual(await gate(stable.ask, {want: 'R2', timeoutMs: 5000, stableMs: 1000, ...stable.opts}), {ok: true, ms: 1000, last: {status: 200, release: 'R2', pid: 7}, pid: 7})
  })

  it('through a long stable window the canary is asked every second, and a restart 3 s in fails it then, not at the end', async () => {
    const s = scripted([{status: 200, release: 'R2', pid: 7}, {status: 200, release: 'R2', pid: 7}, {status: 200, release: 'R2', pid: 7}, {status: 200, release: 'R2', pid: 8}])
    const o = await gate(s.ask, {want: 'R2', timeoutMs: 30_000, stableMs: 15_000, ...s.opts})
    assert.equal(o.ok, false)
    assert.equal(o.ms, 3000)
    assert.equal(gateFailure('http://a:8080/readyz', 'R2', o), 'http://a:8080/readyz reported release R2 from pid 7, then within its stable window: 200 from release R2 (pid 8)')
  })

  it('an old process never passes; the failure names the last answer', async () => {
    const s = scripted([{status: 200, release: 'R1', pid: 3}])
    const o = await gate(s.ask, {want: 'R2', timeoutMs: 2000, stableMs: 0, ...s.opts})
    assert.equal(o.ok, false)
    assert.equal(gateFailure('http://a:8080/readyz', 'R2', o), 'http://a:8080/readyz did not report release R2 with 200 within 2.0 s: last answer 200 from release R1 (pid 3)')
  })

  it('reads status, release and pid from an HTTP answer', () => {
    assert.deepEqual(parseAnswer('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"release":"R2","pid":9,"ready":true}'), {status: 200, release: 'R2', pid: 9})
    assert.deepEqual(parseAnswer('HTTP/1.1 502 Bad Gateway\r\n\r\n<html>'), {status: 502})
    assert.equal(parseAnswer('').status, 0)
    assert.equal(parseAnswer('SSH-2.0-OpenSSH').status, 0)
  })

  describe('asking over a stream', () => {
    let server: http.Server
    let port = 0
    let silent: net.Server
    let silentPort = 0
    before(async () => {
      // Answers after a while, as a readyz that checks its dependencies does.
      server = http.createServer((req, res) => {
        setTimeout(() => res.writeHead(req.url === '/readyz' ? 200 : 404, {'content-type': 'application/json'}).end(JSON.stringify({release: 'R2', pid: process.pid})), 50)
      })
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
      port = (server.address() as AddressInfo).port
      silent = net.createServer(() => {}) // accepts and never answers
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
      silentPort = (silent.address() as AddressInfo).port
    })
    after(() => {
      server.close()
      silent.close()
      server.closeAllConnections()
    })
    const open = (p: number) => () => new Promise<net.Socket>((resolve, reject) => {
      const sock = net.connect(p, '127.0.0.1', () => resolve(sock))
      sock.once('error', reject)
    })

    it('gets the answer of a real HTTP server', async () => {
      assert.deepEqual(await askOver(open(port), '127.0.0.1', '/readyz'), {status: 200, release: 'R2', pid: process.pid})
      assert.equal((await askOver(open(port), '127.0.0.1', '/nope')).status, 404)
    })

    it('a refused connect or a silent server is status 0 with the reason, within the bound', async () => {
      const refused = await askOver(open(1), '127.0.0.1', '/readyz')
      assert.equal(refused.status, 0)
      assert.match(refused.error!, /ECONNREFUSED/)
      const t0 = Date.now()
      const quiet = await askOver(open(silentPort), '127.0.0.1', '/readyz', 300)
      assert.deepEqual(quiet, {status: 0, error: 'no answer within 300 ms'})
      assert.ok(Date.now() - t0 < 2000)
    })
  })
})
