import assert from 'node:assert/strict'
import {after, before, beforeEach, describe, it} from 'node:test'

import {DescribeTargetHealthCommand, ElasticLoadBalancingV2Client} from '@aws-sdk/client-elastic-load-balancing-v2'

import {startTestLab, type TestLab} from '../support/lab.js'
import {actionsOf, lb, lbLab, setFaults, reset, rotate, startMissing, stopNginx, writeConfig, type LbLab} from '../lb/lab-helpers.js'

/**
 * The lb commands end to end on a second lab: `lb watch` interrupted in the middle of a deregistration,
 * the same rotation against the ELBv2 target group, and the state and lock shared through Redis.
 */

let lab: TestLab
let l: LbLab
before(async () => {
  lab = await startTestLab({hosts: 1, nginx: 2, cloud: true, redis: true})
  l = await lbLab(lab)
})
after(async () => {
  await Promise.all(l?.apps.map((a) => a.stop()) ?? [])
  await lab?.stop()
})
beforeEach(() => reset(l))

describe('lb commands', () => {
  it('Ctrl-C of lb watch in the middle of a deregistration: the action completes, no other starts, the lock is free', async () => {
    // nginx2 is stopped; the endpoint answers its deregistration 6 s late, and the interrupt comes meanwhile
    // (about 4.5 s after the pass before the one that takes it out).
    await stopNginx(lab, 'nginx2')
    let passes = 0
    let sentAt: number | undefined
    let printedAt: number | undefined
    const ran = await lb(['watch', '--interval', '1'], l.config, {
      timeoutMs: 60_000,
      onStdout: (text, child) => {
        if (printedAt === undefined && /deregistered nginx2/.test(text)) printedAt = Date.now()
        const n = (text.match(/ (ok|attention): /g) ?? []).length
        if (n > passes) {
          passes = n
          if (n === 2) {
            void setFaults(lab, {delayMs: 6000, actions: ['DeregisterInstancesFromLoadBalancer']})
            setTimeout(() => {
              sentAt = Date.now()
              child.kill('SIGINT')
            }, 4500)
          }
        }
      },
    })
    assert.equal(ran.code, 130, ran.stdout + ran.stderr)
    assert.ok(sentAt !== undefined && printedAt !== undefined && sentAt < printedAt, `the interrupt came after the action: ${ran.stdout}`)
    assert.match(ran.stdout, /deregistered nginx2 \(\S+\): failed 3 probes in a row; draining not waited out \(stopped after [\d.]+ s\)/)
    assert.match(ran.stdout, / interrupted: Classic ELB feed-lab: 2 nodes, 1 registered; deregistered 1/)
    assert.match(ran.stderr, /Interrupted: finishing the action under way/)
    assert.doesNotMatch(ran.stderr, /Bug:/)
    // Not half an action: the node is out at the ELB, the counts were kept, and the lock was released.
    await setFaults(lab, undefined)
    const next = await rotate(l.config)
    assert.notEqual(next.code, 3, next.ran.stderr)
    const n2 = next.result.nodes.find((n: {name: string}) => n.name === 'nginx2')
    assert.ok(n2.elb === undefined || n2.elb.state === 'Draining', JSON.stringify(n2.elb))
    assert.ok(n2.counts.fails >= 4)
  })

  it('the same rotation against the ELBv2 target group', async () => {
    const v2 = new ElasticLoadBalancingV2Client({region: 'us-east-1', endpoint: lab.layout.cloud.endpoint, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}})
    const arn = (await import('yaml')).parse((await import('node:fs')).readFileSync(l.elbv2Config, 'utf8')).environments.lab.lb.targetGroupArn as string
    const targetState = async (id: string) => {
      const out = await v2.send(new DescribeTargetHealthCommand({TargetGroupArn: arn, Targets: [{Id: id, Port: 8080}]}))
      return out.TargetHealthDescriptions?.[0]?.TargetHealth?.State
    }
    try {
      assert.equal((await rotate(l.elbv2Config)).code, 0)
      await stopNginx(lab, 'nginx1')
      const passes = [await rotate(l.elbv2Config), await rotate(l.elbv2Config), await rotate(l.elbv2Config)]
      assert.deepEqual(passes.map((p) => actionsOf(p.result)), [[], [], ['deregister nginx1']])
      assert.match(passes[2]!.result.lb, /^target group feed-lab-tg\//)
      assert.match((await targetState(lab.layout.nginx[0]!.instanceId)) ?? 'unused', /unused|draining/)
      await startMissing(lab)
      const back = [await rotate(l.elbv2Config), await rotate(l.elbv2Config)]
      assert.deepEqual(back.map((p) => actionsOf(p.result)), [[], ['register nginx1']])
      assert.notEqual(await targetState(lab.layout.nginx[0]!.instanceId), 'unused')
    } finally {
      v2.destroy()
    }
  })

  it('lb.state: redis: counts, drains and the lock shared by every machine that points at it', async () => {
    const redisConfig = writeConfig(lab, 'redis-state.yml', (env) => void ((env.lb as Record<string, unknown>).state = 'redis'))
    const {Redis} = await import('ioredis')
    const redis = new Redis(lab.layout.redis.url)
    try {
      await redis.del('feedops:lb:classic-feed-lab:state', 'feedops:lb:classic-feed-lab:lock')
      await stopNginx(lab, 'nginx2')
      for (let i = 0; i < 2; i++) assert.deepEqual(actionsOf((await rotate(redisConfig)).result), [])
      const kept = JSON.parse((await redis.get('feedops:lb:classic-feed-lab:state'))!)
      assert.equal(kept.counts.nginx2.fails, 2)
      // Another operator's pass holds the lock: this one exits 3.
      await redis.set('feedops:lb:classic-feed-lab:lock', JSON.stringify({by: 'ops@other-box', host: 'other-box', pid: 4242, since: 'now', what: 'rotate', token: 't'}), 'PX', 10_000)
      const held = await lb(['rotate'], redisConfig)
      assert.equal(held.code, 3)
      assert.match(held.stderr, /Another lb pass holds the lock: ops@other-box \(pid 4242, rotate/)
      await redis.del('feedops:lb:classic-feed-lab:lock')
      assert.deepEqual(actionsOf((await rotate(redisConfig)).result), ['deregister nginx2'])
      assert.equal(await redis.exists('feedops:lb:classic-feed-lab:lock'), 0, 'the pass released its lock')
      await startMissing(lab)
    } finally {
      redis.disconnect()
    }
  })
})
