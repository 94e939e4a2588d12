import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {configOnly, failureKind} from '../../src/deploy/failure.js'
import {marksFor} from '../../src/deploy/finish.js'
import {gateFailure, parseAnswer} from '../../src/deploy/gate.js'
import {newHostState} from '../../src/deploy/remote.js'

describe('a config failure is not a bad release', () => {
  it('a new release that runs but cannot reach what its config names is a config failure; anything else is the code', () => {
    const raw = 'HTTP/1.0 503 Service Unavailable\r\n\r\n{"ready":false,"release":"R2","pid":7,"checks":{"map":"ok","catalog":"ok","redis":"ok","servers":{"pg1":"connect ECONNREFUSED 127.0.0.1:1"}}}'
    const last = parseAnswer(raw)
    assert.deepEqual(last.failing, ['servers.pg1: connect ECONNREFUSED 127.0.0.1:1'])
    const text = gateFailure('http://h:8080/readyz', 'R2', {ok: false, ms: 6000, last})
    assert.match(text, /^config failure: .*it runs, but cannot reach servers\.pg1: connect ECONNREFUSED/)
    assert.equal(failureKind(text), 'config')
    // The old release answering, or nothing answering, is the code's failure.
    assert.equal(failureKind(gateFailure('u', 'R2', {ok: false, ms: 6000, last: {...last, release: 'R1'}})), 'code')
    assert.equal(failureKind(gateFailure('u', 'R2', {ok: false, ms: 6000, last: {status: 0, error: 'refused'}})), 'code')
    // The app refusing its config at start exits 2 (its UserError path).
    assert.equal(failureKind('the app of R2 did not start: it exited with code 2 before listening (see shared/log/app.log)'), 'config')
    assert.equal(failureKind('the app of R2 did not start: it exited with code 1 before listening'), 'code')
    assert.equal(configOnly(['config failure: x', 'config failure: y']), true)
    assert.equal(configOnly(['config failure: x', 'boom']), false)
  })

  it('a host whose config failed gets the release marked abandoned, not bad', () => {
    const s = newHostState({name: 'app1', address: '127.0.0.1', roles: ['app'], tags: {}})
    s.probe = {root: '/r', freeKb: 1, hasRuntime: true, current: 'R1', releases: ['R1', 'R2'], bad: [], abandoned: [], supervisor: null, home: '/home/d', outsideHome: false, audit: ''}
    Object.assign(s.result, {outcome: 'failed', previous: 'R1', current: 'R1', target: 'R2', error: 'config failure: cannot reach servers.pg1'})
    s.configFailed = true
    const marks = marksFor(s, {action: 'deploy', stopped: 'max-fail', release: 'R2', run: 'RUN', operator: 'ann'}, [])
    assert.deepEqual(marks.map((m) => [m.release, m.mark]), [['R2', 'ABANDONED']])
    assert.match(marks[0]!.why, /its config failed on this host \(not its code\)/)
  })
})
