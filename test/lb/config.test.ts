import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {lbSchema} from '../../src/config/lb.js'
import {environmentSchema} from '../../src/config/schema.js'
import {lbIdentity, lbNodes, lbSettings, stateFilePath} from '../../src/lb/context.js'
import {isUserError} from '../../src/errors.js'

const arn = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/feed-lab-tg/0123456789abcdef'
const env = (lb: unknown) => environmentSchema.parse({inventory: {source: 'ec2'}, lb})

describe('lb config section', () => {
  it('the two short forms parse, with the documented defaults', () => {
    const classic = lbSchema.parse({provider: 'classic', name: 'feed-lab'})
    assert.equal(classic.provider, 'classic')
    assert.deepEqual(
      {K: classic.failsOut, J: classic.passesIn, min: classic.minInService, max: classic.maxRemovePerRun, state: classic.state, role: classic.role},
      {K: 3, J: 2, min: 1, max: 1, state: 'file', role: 'nginx'},
    )
    assert.deepEqual(classic.probe, {path: '/nginx-health', port: 8080, timeoutMs: 2000})
    const v2 = lbSchema.parse({provider: 'elbv2', targetGroupArn: arn})
    assert.equal(v2.provider === 'elbv2' && v2.targetType, 'instance')
  })

  it('refuses what would make a pass wrong, naming the key', () => {
    const bad: [unknown, RegExp][] = [
      [{provider: 'classic'}, /name/],
      [{provider: 'nlb', name: 'x'}, /provider/],
      [{provider: 'classic', name: 'feed lab'}, /name/],
      [{provider: 'classic', name: 'x', targetGroupArn: arn}, /targetGroupArn/],
      [{provider: 'elbv2', name: 'x'}, /targetGroupArn/],
      [{provider: 'elbv2', targetGroupArn: 'arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/1'}, /targetGroupArn/],
      [{provider: 'classic', name: 'x', failsOut: 0}, /failsOut/],
      [{provider: 'classic', name: 'x', passesIn: 1.5}, /passesIn/],
      [{provider: 'classic', name: 'x', minInService: -1}, /minInService/],
      [{provider: 'classic', name: 'x', maxRemovePerRun: 0}, /maxRemovePerRun/],
      [{provider: 'classic', name: 'x', probe: {timeoutMs: 10}}, /probe.timeoutMs/],
      [{provider: 'classic', name: 'x', probe: {path: 'nginx-health'}}, /probe.path/],
      [{provider: 'classic', name: 'x', drainTimeoutS: 7200}, /drainTimeoutS/],
      [{provider: 'classic', name: 'x', state: 'etcd'}, /state/],
      [{provider: 'classic', name: 'x', drainTimeoutS: 600, lockStaleSeconds: 600}, /lockStaleSeconds.*drainTimeoutS/],
      [{provider: 'classic', name: 'x', typo: 1}, /typo/],
    ]
    for (const [lb, key] of bad) {
      const r = lbSchema.safeParse(lb)
      assert.equal(r.success, false, JSON.stringify(lb))
      const text = r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message} ${'keys' in i ? String(i.keys) : ''}`).join('\n')
      assert.match(text, key, JSON.stringify(lb))
    }
  })

  it('state: redis needs a redis section; no lb section is bad config (exit 2)', () => {
    const isBad = (e: unknown) => isUserError(e) && e.exitCode === 2
    assert.throws(() => lbSettings(env({provider: 'classic', name: 'x', state: 'redis'}), 'prod'), (e) => isBad(e) && /redis section/.test((e as Error).message))
    assert.throws(() => lbSettings(env(undefined), 'prod'), (e) => isBad(e) && /no lb section/.test((e as Error).message))
  })

  it('state lives per load balancer: the lab folder, or XDG state, or lb.stateFile', () => {
    const lb = lbSchema.parse({provider: 'elbv2', targetGroupArn: arn})
    assert.equal(lbIdentity(lb), 'elbv2-feed-lab-tg-0123456789abcdef')
    assert.equal(stateFilePath({...env(lb), lab: {dir: '/tmp/lab7'}}, lb), '/tmp/lab7/lb-state-elbv2-feed-lab-tg-0123456789abcdef.json')
    process.env.XDG_STATE_HOME = '/var/tmp/xdg'
    assert.equal(stateFilePath(env(lb), lb), '/var/tmp/xdg/feedops/lb-state-elbv2-feed-lab-tg-0123456789abcdef.json')
    const fixed = lbSchema.parse({provider: 'classic', name: 'feed', stateFile: '/srv/lb.json'})
    assert.equal(stateFilePath(env(fixed), fixed), '/srv/lb.json')
  })

  it('nodes are the inventory hosts with the lb role, by instance id (or address for ip targets)', () => {
    const hosts = [
      {name: 'nginx1', address: '10.0.0.1', roles: ['nginx'], tags: {}, instanceId: 'i-1'},
      {name: 'app1', address: '10.0.1.1', roles: ['app'], tags: {}, instanceId: 'i-2'},
    ]
    const classic = lbSchema.parse({provider: 'classic', name: 'feed'})
    assert.deepEqual(lbNodes(hosts, classic), [{name: 'nginx1', id: 'i-1', address: '10.0.0.1', port: 8080, path: '/nginx-health'}])
    const ip = lbSchema.parse({provider: 'elbv2', targetGroupArn: arn, targetType: 'ip'})
    assert.equal(lbNodes(hosts, ip)[0]!.id, '10.0.0.1')
    assert.throws(() => lbNodes([{name: 'n', address: 'a', roles: ['nginx'], tags: {}}], classic), (e) => isUserError(e) && /no EC2 instance id/.test(e.message))
  })
})
