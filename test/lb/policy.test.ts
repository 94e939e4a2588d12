import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {decide, type NodeCounts, type PolicyInput, type PolicyResult, type PolicySettings} from '../../src/lb/policy.js'
import type {Member} from '../../src/lb/provider.js'

const settings: PolicySettings = {failsOut: 3, passesIn: 2, minInService: 1, maxRemovePerRun: 1}
const inService = (id: string): Member => ({id, state: 'InService', rawState: 'InService'})
const names = ['nginx1', 'nginx2', 'nginx3']
const idOf = (name: string) => `i-${name}`

/** A fleet of three where every node is registered, with the given probe results by name (default: pass). */
function input(probes: Record<string, boolean> = {}, over: Partial<PolicyInput> = {}): PolicyInput {
  return {
    nodes: names.map((name) => ({name, id: idOf(name), probeOk: probes[name] ?? true})),
    members: names.map((n) => inService(idOf(n))),
    counts: {},
    drains: {},
    settings,
    ...over,
  }
}

/** Runs passes in a row as cron would: the counts and the load balancer's membership carry over. */
function passes(rounds: Record<string, boolean>[], over: Partial<PolicyInput> = {}): PolicyResult[] {
  let counts: Record<string, NodeCounts> = over.counts ? {...over.counts} : {}
  let members = [...(over.members ?? names.map((n) => inService(idOf(n))))]
  const results: PolicyResult[] = []
  for (const probes of rounds) {
    const r = decide({...input(probes, over), counts, members})
    counts = r.counts
    for (const a of r.actions) {
      if (a.action === 'deregister') members = members.filter((m) => m.id !== a.id)
      else members.push(inService(a.id))
    }
    results.push(r)
  }
  return results
}

const actionsOf = (r: PolicyResult) => r.actions.map((a) => `${a.action} ${a.name}`)
const decisionOf = (r: PolicyResult, name: string) => r.nodes.find((n) => n.name === name)!.decision

describe('lb rotation policy', () => {
  it('a healthy fleet: nothing to do, as wanted', () => {
    const r = decide(input())
    assert.deepEqual(r.actions, [])
    assert.equal(r.wanted, true)
    assert.equal(r.panic, false)
    assert.deepEqual(r.counts.nginx1, {passes: 1, fails: 0})
  })

  it('deregisters after K consecutive fails, not before', () => {
    const rs = passes([{nginx2: false}, {nginx2: false}, {nginx2: false}])
    assert.deepEqual(rs.map(actionsOf), [[], [], ['deregister nginx2']])
    assert.equal(rs[0]!.wanted, true, 'a node still in while it counts fails is as wanted')
    assert.equal(decisionOf(rs[1]!, 'nginx2'), 'in')
    assert.equal(rs[2]!.wanted, false, 'a node taken out is not the fleet as wanted (exit 1)')
  })

  it('registers again after J consecutive passes', () => {
    const rs = passes([{nginx2: false}, {nginx2: false}, {nginx2: false}, {nginx2: false}, {}, {}, {}])
    assert.deepEqual(rs.map(actionsOf), [[], [], ['deregister nginx2'], [], [], ['register nginx2'], []])
    assert.equal(decisionOf(rs[4]!, 'nginx2'), 'out')
    assert.match(rs[4]!.nodes[1]!.why, /passed 1 of 2/)
    assert.equal(rs[5]!.wanted, true)
  })

  it('a flapping node (pass, fail, pass, fail…) is never taken out', () => {
    const rounds = Array.from({length: 40}, (_, i) => ({nginx3: i % 2 === 0}))
    const rs = passes(rounds)
    assert.deepEqual(rs.flatMap(actionsOf), [])
    assert.ok(rs.every((r) => r.wanted))
  })

  it('a node failing two in three is never taken out with K = 3', () => {
    const rounds = Array.from({length: 30}, (_, i) => ({nginx1: i % 3 === 2}))
    assert.deepEqual(passes(rounds).flatMap(actionsOf), [])
  })

  it('a node taken out that flaps stays out (J consecutive passes needed)', () => {
    const rounds = [{nginx1: false}, {nginx1: false}, {nginx1: false}, ...Array.from({length: 20}, (_, i) => ({nginx1: i % 2 === 0}))]
    const rs = passes(rounds)
    assert.deepEqual(rs.flatMap(actionsOf), ['deregister nginx1'])
  })

  it('every node failing: nothing changes, a loud warning, not as wanted (exit 1)', () => {
    const all = {nginx1: false, nginx2: false, nginx3: false}
    const rs = passes([all, all, all, all, all])
    assert.deepEqual(rs.flatMap(actionsOf), [])
    for (const r of rs) {
      assert.equal(r.panic, true)
      assert.equal(r.wanted, false)
      assert.match(r.warnings.join('\n'), /Every node failed its probe \(3 of 3\): changing nothing/)
    }
    assert.equal(decisionOf(rs[4]!, 'nginx1'), 'held')
    assert.deepEqual(rs[4]!.counts.nginx1, {passes: 0, fails: 5}, 'the counts still follow the probes')
  })

  it('panic counts only nodes not drained by hand', () => {
    const drains = {nginx1: {by: 'ops@box', at: '2026-01-01T00:00:00Z', why: 'disk'}}
    const r = decide(input({nginx1: true, nginx2: false, nginx3: false}, {drains, counts: {nginx2: {passes: 0, fails: 5}, nginx3: {passes: 0, fails: 5}}}))
    assert.equal(r.panic, true)
    assert.deepEqual(r.actions, [])
  })

  it('at most maxRemovePerRun out per pass, the worst first', () => {
    const counts = {nginx1: {passes: 0, fails: 3}, nginx2: {passes: 0, fails: 7}, nginx3: {passes: 4, fails: 0}}
    const r = decide(input({nginx1: false, nginx2: false}, {counts}))
    assert.deepEqual(actionsOf(r), ['deregister nginx2'])
    assert.equal(decisionOf(r, 'nginx1'), 'held')
    assert.match(r.nodes[0]!.why, /maxRemovePerRun \(1\)/)
    const two = decide(input({nginx1: false, nginx2: false}, {counts, settings: {...settings, maxRemovePerRun: 2}}))
    assert.deepEqual(actionsOf(two), ['deregister nginx1', 'deregister nginx2'])
  })

  it('never fewer than minInService registered', () => {
    // nginx3 is already out; nginx1 and nginx2 fail; min 1 lets one of them go.
    const members = [inService('i-nginx1'), inService('i-nginx2')]
    const counts = {nginx1: {passes: 0, fails: 9}, nginx2: {passes: 0, fails: 9}, nginx3: {passes: 0, fails: 0}}
    const r = decide(input({nginx1: false, nginx2: false, nginx3: true}, {members, counts, settings: {...settings, maxRemovePerRun: 5}}))
    assert.deepEqual(actionsOf(r), ['deregister nginx1'])
    assert.equal(decisionOf(r, 'nginx2'), 'held')
    assert.match(r.warnings.join('\n'), /nginx2 .* fewer than minInService \(1\)/)
    assert.equal(r.wanted, false)
    const min2 = decide(input({nginx1: false, nginx2: false, nginx3: true}, {members, counts, settings: {...settings, minInService: 2}}))
    assert.deepEqual(actionsOf(min2), [])
  })

  it('a new registration does not count towards minInService in the same pass', () => {
    const members = [inService('i-nginx1')]
    const counts = {nginx1: {passes: 0, fails: 5}, nginx2: {passes: 3, fails: 0}, nginx3: {passes: 0, fails: 9}}
    const r = decide(input({nginx1: false, nginx2: true, nginx3: false}, {members, counts}))
    assert.deepEqual(actionsOf(r), ['register nginx2'])
    assert.equal(decisionOf(r, 'nginx1'), 'held')
  })

  it('a node drained by hand is left alone, registered or not, healthy or not', () => {
    const drains = {nginx2: {by: 'ops@box', at: '2026-01-01T00:00:00Z', why: 'kernel upgrade'}}
    const members = [inService('i-nginx1'), inService('i-nginx3')]
    const rs = passes([{}, {}, {}, {}], {drains, members})
    assert.deepEqual(rs.flatMap(actionsOf), [])
    assert.equal(decisionOf(rs[3]!, 'nginx2'), 'drained')
    assert.equal(rs[3]!.wanted, true, 'a drain by hand is the fleet as wanted')
    const failing = passes([{nginx2: false}, {nginx2: false}, {nginx2: false}, {nginx2: false}], {drains})
    assert.deepEqual(failing.flatMap(actionsOf), [], 'still registered (the drain was re-registered by hand?) and failing: not touched')
  })

  it('instances the inventory does not know are reported, never touched or counted', () => {
    const members = [inService('i-nginx1'), inService('i-stranger'), {id: 'i-old', state: 'OutOfService', rawState: 'OutOfService'} as Member]
    const counts = {nginx1: {passes: 0, fails: 5}, nginx2: {passes: 0, fails: 0}, nginx3: {passes: 0, fails: 0}}
    const r = decide(input({nginx1: false, nginx2: true, nginx3: true}, {members, counts}))
    assert.deepEqual(r.unknown.map((m) => m.id), ['i-stranger', 'i-old'])
    assert.ok(r.actions.every((a) => a.id.startsWith('i-nginx')))
    // nginx1 is the only known node registered: min 1 keeps it, whatever the strangers.
    assert.equal(decisionOf(r, 'nginx1'), 'held')
    assert.match(r.warnings.join('\n'), /2 targets the inventory does not know \(i-stranger, i-old\)/)
  })

  it('a member draining out counts as not registered', () => {
    const members: Member[] = [inService('i-nginx1'), inService('i-nginx2'), {id: 'i-nginx3', state: 'Draining', rawState: 'OutOfService'}]
    const r = decide(input({nginx3: false}, {members, counts: {nginx3: {passes: 0, fails: 5}}}))
    assert.deepEqual(r.actions, [])
    assert.equal(decisionOf(r, 'nginx3'), 'out')
  })

  it('healthy nodes never registered come in after J passes; a one-node fleet is never emptied', () => {
    const rs = passes([{}, {}], {members: []})
    assert.deepEqual(rs.map(actionsOf), [[], ['register nginx1', 'register nginx2', 'register nginx3']])
    const one = {...input({nginx1: false}), nodes: [{name: 'nginx1', id: 'i-nginx1', probeOk: false}], counts: {nginx1: {passes: 0, fails: 10}}}
    assert.deepEqual(decide(one).actions, [])
  })

  it('kept counts cover only the inventory’s nodes', () => {
    const r = decide(input({}, {counts: {gone: {passes: 9, fails: 0}}}))
    assert.deepEqual(Object.keys(r.counts).sort(), names)
  })
})
