import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {verdict} from '../../src/deploy/bake.js'
import {afterExit, RESTART_POLICY} from '../../src/deploy/restart-policy.js'
import {systemdUnit} from '../../src/deploy/systemd.js'

describe('restart policy (the supervisor and the systemd unit)', () => {
  it('restarts a failed exit after a delay that doubles, and gives up past the burst', () => {
    const fail = {code: 1, signal: null}
    const exits: number[] = []
    const delays: number[] = []
    let t = 0
    for (;;) {
      const d = afterExit(exits, t, fail)
      exits.push(t)
      if (!d.restart) {
        assert.match(d.why, /failed 6 times within 60 s \(burst limit 5\)/)
        break
      }
      delays.push(d.delayMs)
      t += d.delayMs + 500
    }
    assert.deepEqual(delays, [100, 200, 400, 800, 1600])
    // Exits older than the interval do not count.
    assert.deepEqual(afterExit([0, 1, 2, 3, 4, 5], RESTART_POLICY.intervalMs + 10, fail), {restart: true, delayMs: 100})
    // A signal is a failure; a clean exit (the app drained on SIGTERM) is not restarted.
    assert.equal(afterExit([], 0, {code: null, signal: 'SIGKILL'}).restart, true)
    assert.equal(afterExit([], 0, {code: 0, signal: null}).restart, false)
  })

  it('the systemd unit says the same', () => {
    const unit = systemdUnit({root: '/srv/feed'})
    assert.match(unit, /^Restart=on-failure$/m)
    assert.match(unit, /^RestartSec=100ms$/m)
    assert.match(unit, /^RestartMaxDelaySec=5$/m)
    assert.match(unit, /^StartLimitBurst=5$/m)
    assert.match(unit, /^StartLimitIntervalSec=60$/m)
    // The start limit belongs to [Unit], the restart settings to [Service].
    assert.ok(unit.indexOf('StartLimitBurst') < unit.indexOf('[Service]') && unit.indexOf('Restart=') > unit.indexOf('[Service]'))
  })
})

describe('the re-check of a host after its gate', () => {
  const want = {release: 'R2', pid: 7}
  it('a new pid or another release is a definite failure; no answer may be a blip', () => {
    assert.deepEqual(verdict({status: 200, release: 'R2', pid: 7}, want), {ok: true})
    assert.deepEqual(verdict({status: 200, release: 'R2', pid: 8}, want), {ok: false, definite: true, why: 'restarted: now pid 8, its gate saw pid 7'})
    assert.deepEqual(verdict({status: 200, release: 'R1', pid: 7}, want), {ok: false, definite: true, why: 'now reports release R1'})
    assert.deepEqual(verdict({status: 0, error: 'connect ECONNREFUSED'}, want), {ok: false, definite: false, why: 'no answer (connect ECONNREFUSED)'})
    assert.deepEqual(verdict({status: 503, release: 'R2', pid: 7}, want), {ok: false, definite: false, why: 'answered 503'})
  })
})
