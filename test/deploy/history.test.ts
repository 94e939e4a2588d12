import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {AuditEntry} from '../../src/deploy/audit.js'
import {releasesRan, rollbackTarget, unfinishedRuns} from '../../src/deploy/history.js'

/** Audit lines as a run writes them on one host: started, one switched per move, the end. */
let clock = 0
const at = () => new Date(Date.UTC(2026, 11, 8, 0, 0, clock++)).toISOString()
function run(id: string, host: string, moves: [string | null, string | null, boolean?][], end: 'finished' | 'rolled back' | null = 'finished', action: 'deploy' | 'rollback' = 'deploy', extra: Partial<AuditEntry> = {}): AuditEntry[] {
  const base = {who: 'ann@ops', action, environment: 'lab', run: id, hosts: {}}
  return [
    {...base, at: at(), event: 'started', release: ''},
    ...moves.map(([from, to, back]): AuditEntry => ({...base, at: at(), event: 'switched', release: to ?? '', host, from, to, ...(back ? {back} : {})})),
    ...(end ? [{...base, at: at(), event: end, release: moves[0]?.[1] ?? '', result: end === 'finished' ? ('ok' as const) : ('rolled back' as const), ...extra}] : []),
  ]
}

describe('rollback by history', () => {
  it('goes to what the host ran before the last change, not to the newest older id', () => {
    // deploy A, deploy B, deploy X (crashing: nobody caught it), rollback to B, deploy G, rollback.
    const lines = [
      ...run('r1', 'app1', [[null, 'A']]),
      ...run('r2', 'app1', [['A', 'B']]),
      ...run('r3', 'app1', [['B', 'X']]),
      ...run('r4', 'app1', [['X', 'B']], 'finished', 'rollback'),
      ...run('r5', 'app1', [['B', 'G']]),
    ]
    assert.deepEqual(
      releasesRan('app1', lines).map((r) => r.release),
      ['A', 'B', 'X', 'B', 'G'],
    )
    // X was rolled away from (marked abandoned by r4): never a target again, though it is newer than B.
    const t = rollbackTarget('app1', lines, {current: 'G', present: ['A', 'B', 'G', 'X'], excluded: new Set(['X'])})
    assert.equal(t.release, 'B')
    assert.match((t as {source: string}).source, /^ran before deploy r5 by ann@ops at /)
    // Without the mark it would still be B: the host ran B right before G.
    assert.equal(rollbackTarget('app1', lines, {current: 'G', present: ['A', 'B', 'G', 'X'], excluded: new Set()}).release, 'B')
  })

  it('a release abandoned by a run that died is skipped; so is one no longer on the host', () => {
    const lines = [...run('r1', 'app1', [[null, 'A']]), ...run('r2', 'app1', [['A', 'B']]), ...run('r3', 'app1', [['B', 'C']], null), ...run('r4', 'app1', [['C', 'G']])]
    const t = rollbackTarget('app1', lines, {current: 'G', present: ['A', 'C', 'G'], excluded: new Set(['C'])})
    assert.equal(t.release, 'A')
    assert.match((t as {source: string}).source, /skipped C \(marked\), B \(no longer on the host\)/)
  })

  it('a second rollback goes further back; a release that never ran is never picked', () => {
    const lines = [...run('r1', 'app1', [[null, 'A']]), ...run('r2', 'app1', [['A', 'B']]), ...run('r3', 'app1', [['B', 'A']], 'finished', 'rollback')]
    // Present but never ran here: N (shipped by a deploy that stopped before switching this host).
    const t = rollbackTarget('app1', lines, {current: 'A', present: ['A', 'B', 'N'], excluded: new Set(['B'])})
    assert.equal(t.release, null)
    assert.match((t as {why: string}).why, /no release it ran before A is left/)
    assert.equal(rollbackTarget('app1', [], {current: 'A', present: ['A', 'N'], excluded: new Set()}).release, null)
  })

  it('a switch back within one run is no change; lines from before events existed still count', () => {
    const legacy: AuditEntry = {at: at(), who: 'old@ops', action: 'deploy', environment: 'lab', release: 'L', result: 'ok', hosts: {app1: 'updated'}}
    const lines = [legacy, ...run('r2', 'app1', [['L', 'M'], ['M', 'L', true]], 'rolled back'), ...run('r3', 'app1', [['L', 'N']])]
    assert.deepEqual(releasesRan('app1', lines).map((r) => r.release), ['L', 'N'])
    assert.equal(rollbackTarget('app1', lines, {current: 'N', present: ['L', 'M', 'N'], excluded: new Set(['M'])}).release, 'L')
  })
})

describe('runs that never finished', () => {
  it('names who, when and which hosts a started run left switched, until a later run accounts for it', () => {
    const a1 = [...run('r1', 'app1', [['A', 'B']]), ...run('k', 'app1', [['B', 'K']], null)]
    const a2 = [...run('r1', 'app2', [['A', 'B']]), {...run('k', 'app2', [], null)[0]!}]
    const u = unfinishedRuns(
      new Map([
        ['app1', a1],
        ['app2', a2],
      ]),
    )
    assert.deepEqual(
      u.map((x) => ({run: x.run, who: x.who, releases: x.releases, switched: x.switched})),
      [{run: 'k', who: 'ann@ops', releases: ['K'], switched: ['app1']}],
    )
    // Its own run is never reported, and a later run's end accounts for it.
    assert.deepEqual(unfinishedRuns(new Map([['app1', a1]]), 'k'), [])
    const later = run('r9', 'app1', [], 'finished', 'deploy', {accounted: ['k']})
    assert.deepEqual(unfinishedRuns(new Map([['app1', [...a1, ...later]]])), [])
  })
})
