import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import path from 'node:path'
import {after, before, beforeEach, describe, it} from 'node:test'

import {DescribeInstanceHealthCommand} from '@aws-sdk/client-elastic-load-balancing'

import {readRequestLog} from '../../src/lab/cloud/request-log.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import {actionsOf, breakUpstreams, lb, lbLab, passInProcess, reset, rotate, setFaults, startMissing, stopNginx, untilInService, writeConfig, type LbLab} from './lab-helpers.js'

/**
 * `lb rotate` against a real lab: HAProxy as the Classic ELB's data plane (shallow TCP:8080 check), three
 * nginx nodes, two app hosts answering /readyz, the cloud endpoint. K = 3, J = 2 (the defaults).
 */

let lab: TestLab
let l: LbLab
before(async () => {
  lab = await startTestLab({hosts: 2, nginx: 3, cloud: true})
  l = await lbLab(lab)
})
after(async () => {
  await Promise.all(l?.apps.map((a) => a.stop()) ?? [])
  await lab?.stop()
})
beforeEach(() => reset(l))

async function elbHealth(id: string): Promise<{State?: string | undefined; Description?: string | undefined}> {
  const out = await l.elb.send(new DescribeInstanceHealthCommand({LoadBalancerName: 'feed-lab', Instances: [{InstanceId: id}]}))
  return out.InstanceStates![0]!
}

const node = (i: number) => lab.layout.nginx[i - 1]!

describe('lb rotate (Classic ELB on the lab)', () => {
  it('a node whose nginx is stopped is out after K passes, and back after J passes once started', async () => {
    await stopNginx(lab, 'nginx3')
    const first = await passInProcess(l.config)
    const second = await passInProcess(l.config)
    assert.deepEqual([actionsOf(first.result), actionsOf(second.result)], [[], []])
    assert.equal(first.code, 0, 'counting fails, still in: as wanted')
    const third = await rotate(l.config)
    assert.deepEqual(actionsOf(third.result), ['deregister nginx3'])
    assert.equal(third.code, 1)
    assert.match((await elbHealth(node(3).instanceId)).Description ?? '', /not currently registered/)

    await startMissing(lab)
    const back1 = await passInProcess(l.config)
    assert.deepEqual(actionsOf(back1.result), [])
    assert.equal(back1.code, 1, 'a node still out is not the fleet as wanted')
    const back2 = await rotate(l.config)
    assert.deepEqual(actionsOf(back2.result), ['register nginx3'])
    assert.equal(back2.code, 0)
    assert.match(back2.ran.stdout, /"registered 1"|registered 1/)
  })

  it('nginx answering but reaching no app host: the ELB keeps it InService, the deep probe takes it out', async () => {
    await untilInService(l, node(2).instanceId)
    await breakUpstreams(lab, 'nginx2', true)
    for (let i = 0; i < 2; i++) assert.deepEqual(actionsOf((await passInProcess(l.config)).result), [])
    const status = await lb(['status'], l.config)
    assert.equal(status.code, 0, status.stderr)
    assert.match(status.stdout, /nginx2 .*FAIL HTTP 50\d .*InService/)
    assert.equal((await elbHealth(node(2).instanceId)).State, 'InService', 'the shallow check passes')
    const third = await rotate(l.config)
    assert.deepEqual(actionsOf(third.result), ['deregister nginx2'], JSON.stringify(third.result.nodes.map((n: any) => [n.name, n.probe, n.counts, n.decision, n.why])))
    const plain = await lb(['status'], l.config)
    assert.match(plain.stdout, /nginx2 .*not registered/)
  })

  it('every node failing: nothing deregistered, a loud warning, exit 1', async () => {
    await Promise.all(l.apps.map((a) => a.stop()))
    for (let i = 0; i < 4; i++) {
      if (i < 3) {
        const r = await passInProcess(l.config)
        assert.equal(r.code, 1)
        assert.deepEqual(r.result.actions, [])
        continue
      }
      const r = await lb(['rotate'], l.config)
      assert.equal(r.code, 1)
      assert.match(r.stdout, /WARNING: Every node failed its probe \(3 of 3\): changing nothing/)
      assert.match(r.stdout, /EVERY NODE FAILING, nothing changed/)
      assert.doesNotMatch(r.stdout, /deregistered nginx/)
    }
    for (const n of lab.layout.nginx) assert.doesNotMatch((await elbHealth(n.instanceId)).Description ?? '', /not currently registered/)
  })

  it('a flapping node (fails, passes, fails…) is never taken out', async () => {
    for (let i = 0; i < 6; i++) {
      await breakUpstreams(lab, 'nginx1', i % 2 === 0)
      const r = await passInProcess(l.config)
      assert.deepEqual(actionsOf(r.result), [], `pass ${i + 1}`)
      assert.equal(r.code, 0)
    }
    assert.equal((await elbHealth(node(1).instanceId)).State, 'InService')
  })

  it('two passes at once: one acts, the other exits 3 at once', async () => {
    // The endpoint answers the ELB API 12 s late (within this config's request timeout), so the first pass
    // holds the lock while the second starts, however slow the machine.
    const slow = writeConfig(lab, 'slow-api.yml', (env) => void Object.assign(env.lb as object, {apiTimeoutMs: 30_000}))
    await setFaults(lab, {delayMs: 12_000, services: ['elasticloadbalancing']})
    const first = lb(['rotate'], slow, {timeoutMs: 90_000})
    const lock = path.join(lab.dir, 'lb-state-classic-feed-lab.json.lock')
    for (let i = 0; i < 400 && !existsSync(lock); i++) await new Promise((r) => setTimeout(r, 25))
    assert.ok(existsSync(lock), 'the first pass never took the lock')
    const second = await lb(['rotate'], slow)
    assert.equal(second.code, 3, second.stdout + second.stderr)
    assert.match(second.stderr, /^Error: Another lb pass holds the lock: \S+@\S+ \(pid \d+, rotate, since .*\nFix: /m)
    assert.equal(second.stdout, '')
    const done = await first
    assert.equal(done.code, 0, done.stderr)
    assert.ok(second.ms < done.ms, `the second pass (${second.ms} ms) waited for the first (${done.ms} ms)`)
  })

  it('throttling: retried by the SDK; past its attempts, one clear error', async () => {
    const since = new Date().toISOString()
    await setFaults(lab, {throttleEvery: 2, services: ['elasticloadbalancing']})
    const retried = await rotate(l.config)
    assert.equal(retried.code, 0, retried.ran.stderr)
    const log = readRequestLog(lab.dir, since).filter((r) => r.service === 'elasticloadbalancing')
    assert.ok(log.some((r) => r.code === 'Throttling'), 'no call was throttled')

    await setFaults(lab, {throttleEvery: 1, services: ['elasticloadbalancing']})
    const refused = await lb(['rotate'], l.config)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^Error: Classic ELB feed-lab kept refusing Describe\w+ with "Rate exceeded" \(throttled 4 times in a row/m)
    assert.match(refused.stderr, /^Fix: /m)
    assert.doesNotMatch(refused.stderr, /Bug:|at .*\.js:\d+/)
  })

  it('a drain by hand is respected by rotate and lifted by restore; the last node cannot be drained', async () => {
    const d = await lb(['drain', 'nginx2', '-m', 'kernel upgrade', '--json'], l.config)
    assert.equal(d.code, 0, d.stderr)
    assert.equal(JSON.parse(d.stdout).deregistered, true)
    for (let i = 0; i < 3; i++) {
      const r = i < 2 ? await passInProcess(l.config) : await rotate(l.config)
      assert.deepEqual(actionsOf(r.result), [], 'rotate left the healthy drained node out')
      assert.equal(r.code, 0, 'a drain by hand is the fleet as wanted')
    }
    const status = await lb(['status'], l.config)
    assert.match(status.stdout, /nginx2 .*not registered .*drained +by \S+@\S+ at \S+: kernel upgrade/)

    assert.equal((await lb(['drain', 'nginx1'], l.config)).code, 0)
    const last = await lb(['drain', 'nginx3', '-m', 'oops'], l.config)
    assert.equal(last.code, 1)
    assert.match(last.stderr, /Draining nginx3 would leave 0 nodes registered .*fewer than minInService \(1\)/)
    assert.match(last.stderr, /--force/)
    assert.doesNotMatch((await elbHealth(node(3).instanceId)).Description ?? '', /not currently registered|deregistration/)
    const forced = await lb(['drain', 'nginx3', '--force', '-m', 'window'], l.config)
    assert.equal(forced.code, 0, forced.stderr)
    assert.match(forced.stderr, /WARNING: --force: nginx3 drained although fewer than lb.minInService \(1\) nodes stay registered/)
    assert.equal((await lb(['restore', 'nginx3'], l.config)).code, 0)

    const restored = await lb(['restore', 'nginx2'], l.config)
    assert.equal(restored.code, 0, restored.stderr)
    assert.match(restored.stdout, /nginx2 \(\S+\): drain by \S+ \(kernel upgrade\) lifted; registered at Classic ELB feed-lab/)
    assert.equal((await lb(['restore', 'nginx1'], l.config)).code, 0)
    const after = await passInProcess(l.config)
    assert.equal(after.code, 0)
    assert.deepEqual(actionsOf(after.result), [])
  })

  it('an instance the ELB lists but the inventory does not: reported, never touched', async () => {
    // An EC2 instance of the lab's that is no NGINX node (an app host), registered by someone else.
    const stranger = lab.layout.hosts[0]!.instanceId
    const {RegisterInstancesWithLoadBalancerCommand} = await import('@aws-sdk/client-elastic-load-balancing')
    await l.elb.send(new RegisterInstancesWithLoadBalancerCommand({LoadBalancerName: 'feed-lab', Instances: [{InstanceId: stranger}]}))
    try {
      const status = await lb(['status'], l.config)
      assert.match(status.stdout, new RegExp(`\\(unknown\\) +${stranger} .*NOT IN INVENTORY, left alone`))
      for (let i = 0; i < 3; i++) {
        const r = await passInProcess(l.config)
        assert.deepEqual(r.result.unknown.map((m: {id: string}) => m.id), [stranger])
        assert.ok(r.result.actions.every((a: {id: string}) => a.id !== stranger))
        assert.match(r.result.warnings.join('\n'), /inventory does not know/)
      }
      assert.doesNotMatch((await elbHealth(stranger)).Description ?? '', /not currently registered/)
    } finally {
      const {deregisterByHand} = await import('./lab-helpers.js')
      await deregisterByHand(l, stranger)
    }
  })

  it('a bad lb section: exit 2 and not one call to the endpoint', async () => {
    const bad = writeConfig(lab, 'bad-lb.yml', (env) => void (env.lb = {provider: 'classic', name: 'feed lab', failsOut: 0}))
    const since = new Date().toISOString()
    for (const args of [['rotate'], ['status'], ['watch', '--interval', '1'], ['drain', 'nginx1']]) {
      const r = await lb(args, bad)
      assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`)
      assert.match(r.stderr, /lb\.name|lb\.failsOut/)
    }
    assert.deepEqual(readRequestLog(lab.dir, since), [])
  })
})
