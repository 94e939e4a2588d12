import assert from 'node:assert/strict'
import http from 'node:http'
import {after, before, beforeEach, describe, it} from 'node:test'

import {DescribeTargetHealthCommand, ElasticLoadBalancingV2Client} from '@aws-sdk/client-elastic-load-balancing-v2'

import {startTestLab, type TestLab} from '../support/lab.js'
import {actionsOf, blackHole, breakUpstreams, lb, lbLab, reset, rotate, startMissing, stopNginx, writeConfig, type LbLab} from '../lb/lab-helpers.js'

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
  it('Ctrl-C of lb watch in the middle of a deregistration: the action completes, the wait ends, the lock is free', async () => {
    // nginx2 reaches an app host that never answers: its deep probe times out, and requests sent through the
    // ELB front to it stay in flight, so its deregistration drains for the lab's full 5 s.
    const hole = await blackHole('127.0.0.1')
    const front = `http://${lab.layout.elb.address}:${lab.layout.elb.port}`
    const inFlight: http.ClientRequest[] = []
    try {
      await breakUpstreams(lab, 'nginx2', true, hole)
      const hang = () => {
        for (let i = 0; i < 8; i++) {
          const req = http.get(`${front}/hang/${i}`, {agent: false}, (res) => res.resume())
          req.on('error', () => undefined)
          inFlight.push(req)
        }
      }
      let sent = false
      let passes = 0
      const ran = await lb(['watch', '--interval', '1'], l.config, {
        timeoutMs: 60_000,
        // Requests in flight to nginx2 just before its third failed probe, so they are there when it is deregistered.
        onStdout: (text) => {
          const n = (text.match(/ (ok|attention): /g) ?? []).length
          if (n > passes) {
            passes = n
            if (n === 2) hang()
          }
        },
        onStderr: (text, child) => {
          if (!sent && /draining connections/.test(text)) {
            sent = true
            child.kill('SIGINT')
          }
        },
      })
      assert.ok(sent, `no draining wait to interrupt: ${ran.stdout}${ran.stderr}`)
      assert.equal(ran.code, 130, ran.stdout + ran.stderr)
      assert.match(ran.stdout, /deregistered nginx2 \(\S+\): failed 3 probes in a row; draining not waited out \(stopped after [\d.]+ s\)/)
      assert.match(ran.stderr, /Interrupted: finishing the action under way/)
      assert.doesNotMatch(ran.stderr, /Bug:/)
      // Not half an action: the node is out at the ELB, the counts were kept, and the lock was released.
      const next = await rotate(l.config)
      assert.notEqual(next.code, 3, next.ran.stderr)
      const n2 = next.result.nodes.find((n: {name: string}) => n.name === 'nginx2')
      assert.ok(n2.elb === undefined || n2.elb.state === 'Draining', JSON.stringify(n2.elb))
      assert.ok(n2.counts.fails >= 4)
    } finally {
      for (const r of inFlight) r.destroy()
      await hole.close()
    }
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
