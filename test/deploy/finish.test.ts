import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {marksFor} from '../../src/deploy/finish.js'
import {newHostState, type HostState} from '../../src/deploy/remote.js'

/** A host's state as the run ends: what it had at preflight, where it is now. */
function host(name: string, o: {outcome: HostState['result']['outcome']; previous: string | null; current: string | null; target: string; present: string[]; codeFailed?: boolean}): HostState {
  const s = newHostState({name, address: '127.0.0.1', roles: ['app'], tags: {}} as never)
  s.probe = {root: '/r', freeKb: 1, hasRuntime: true, current: o.previous, releases: o.present, bad: [], abandoned: [], supervisor: null, home: '/home/d', outsideHome: false, audit: ''}
  Object.assign(s.result, {outcome: o.outcome, previous: o.previous, current: o.current, target: o.target})
  s.codeFailed = o.codeFailed ?? false
  return s
}

const run = {run: 'RUN', operator: 'ann@ops', release: 'R2'}

describe('the marks a run leaves', () => {
  it('a deploy past max-fail: BAD only where the release failed, ABANDONED where it was rolled away from or only unpacked', () => {
    const failed = host('app1', {outcome: 'failed', previous: 'R1', current: 'R1', target: 'R2', present: ['R1', 'R2'], codeFailed: true})
    const rolled = host('app2', {outcome: 'rolled-back', previous: 'R1', current: 'R1', target: 'R2', present: ['R1', 'R2']})
    const r = {...run, action: 'deploy' as const, stopped: 'max-fail' as const}
    assert.deepEqual(marksFor(failed, r, []).map((m) => [m.release, m.mark]), [['R2', 'BAD']])
    assert.deepEqual(marksFor(rolled, r, []).map((m) => [m.release, m.mark]), [['R2', 'ABANDONED']])
  })

  it('a host that could not be written is no reason to mark the release bad anywhere', () => {
    const s = host('app6', {outcome: 'ship-failed', previous: 'R1', current: 'R1', target: 'R2', present: ['R1']})
    const other = host('app1', {outcome: 'not-started', previous: 'R1', current: 'R1', target: 'R2', present: ['R1', 'R2']})
    const r = {...run, action: 'deploy' as const, stopped: 'ship' as const}
    assert.deepEqual(marksFor(s, r, []), [])
    assert.deepEqual(marksFor(other, r, []).map((m) => m.mark), ['ABANDONED'])
  })

  it('a rollback marks what it rolled away from; a run that died leaves its release abandoned, except where it runs', () => {
    const s = host('app1', {outcome: 'updated', previous: 'R2', current: 'R1', target: 'R1', present: ['R1', 'R2', 'K']})
    const dead = [{run: 'K1', who: 'bob', at: 't', action: 'deploy' as const, releases: ['K'], switched: ['app1']}]
    assert.deepEqual(
      marksFor(s, {...run, action: 'rollback', stopped: null}, dead).map((m) => [m.release, m.mark, m.why]),
      [
        ['R2', 'ABANDONED', 'rolled away from by rollback RUN'],
        ['K', 'ABANDONED', 'left by deploy K1 of bob at t, which never finished'],
      ],
    )
    const onK = host('app2', {outcome: 'updated', previous: 'R1', current: 'K', target: 'K', present: ['R1', 'K']})
    assert.deepEqual(marksFor(onK, {...run, action: 'deploy', stopped: null}, dead), [])
  })
})
