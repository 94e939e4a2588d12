import {
  ConfigureHealthCheckCommand,
  DeregisterInstancesFromLoadBalancerCommand,
  DescribeInstanceHealthCommand,
  DescribeLoadBalancerAttributesCommand,
  DescribeLoadBalancersCommand,
  ElasticLoadBalancingClient,
  ModifyLoadBalancerAttributesCommand,
  RegisterInstancesWithLoadBalancerCommand,
  type InstanceState,
} from '@aws-sdk/client-elastic-load-balancing'
import {
  DeregisterTargetsCommand,
  DescribeTargetGroupAttributesCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2'
import {DescribeInstancesCommand, EC2Client} from '@aws-sdk/client-ec2'
import assert from 'node:assert/strict'
import {readFileSync, writeFileSync} from 'node:fs'
import http from 'node:http'
import {after, before, describe, it} from 'node:test'
import {parse} from 'yaml'

import {readCloudFile, writeCloudFile} from '../../src/lab/cloud/cloud-file.js'
import {readRequestLog} from '../../src/lab/cloud/request-log.js'
import {labDataPlane} from '../../src/lab/components/haproxy.js'
import {serverStates} from '../../src/lab/haproxy/runtime.js'
import {labUp} from '../../src/lab/index.js'
import {labPaths} from '../../src/lab/layout.js'
import {labTargetGroupArn} from '../../src/lab/lb-settings.js'
import {readState} from '../../src/lab/state.js'
import {nginxNodeFiles, renderUpstreams} from '../../src/lb/nginx-conf.js'
import {startTestLab, type TestLab} from '../support/lab.js'

/**
 * The lab's ELB through the real SDK clients: 2 app hosts (stand-in apps in this process that answer
 * their name), 2 NGINX nodes (nginx1 → app1, nginx2 → app2, so a body says which node forwarded it),
 * HAProxy in front and the cloud endpoint driving it. One lab for the file; the tests run in order.
 */

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

class StandInApp {
  private server: http.Server | undefined
  constructor(
    readonly name: string,
    readonly address: string,
  ) {}
  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0)
      req.resume()
      setTimeout(() => res.writeHead(200, {'content-type': 'text/plain'}).end(this.name), ms)
    })
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject)
      this.server!.listen(8080, this.address, resolve)
    })
  }
  async stop(): Promise<void> {
    const s = this.server
    if (!s) return
    const closed = new Promise((resolve) => s.close(resolve))
    s.closeAllConnections()
    await closed
  }
}

function get(url: string): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    http
      .get(url, {agent: false}, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve({status: res.statusCode ?? 0, body}))
        res.on('error', reject)
      })
      .on('error', reject)
  })
}

/** Which apps answered `n` requests through a front, one connection each. */
async function served(front: string, n = 6): Promise<string[]> {
  const seen: string[] = []
  for (let i = 0; i < n; i++) {
    const r = await get(`${front}/feed/1`)
    seen.push(r.status === 200 ? r.body : String(r.status))
  }
  return [...new Set(seen)].sort()
}

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: T
  for (;;) {
    last = await probe()
    if (ok(last)) return last
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

describe('the lab ELB: HAProxy driven by the Classic ELB and ELBv2 APIs', {timeout: 120_000}, () => {
  let lab: TestLab
  let elb: ElasticLoadBalancingClient
  let elbv2: ElasticLoadBalancingV2Client
  let front: string
  let tgFront: string
  let node1: string
  let node2: string
  let upAt = 0
  const apps: StandInApp[] = []

  const health = async (ids?: string[]): Promise<Record<string, Omit<InstanceState, 'InstanceId'>>> => {
    const out = await elb.send(new DescribeInstanceHealthCommand({LoadBalancerName: 'feed-lab', Instances: ids?.map((InstanceId) => ({InstanceId}))}))
    return Object.fromEntries((out.InstanceStates ?? []).map(({InstanceId, ...s}) => [InstanceId!, s]))
  }
  const states = async () => Object.fromEntries(Object.entries(await health()).map(([id, s]) => [id, s.State]))
  const nginxPid = (name: string) => readState(lab.dir)!.processes.find((p) => p.component === 'nginx' && p.name === name)!.pid!
  /**
   * Points a node's nginx at one app host (or a dead port), reloads it and waits until it proxies there.
   * The reload waits for a worker to answer first: a master that listens may not have its signal
   * handlers yet, and SIGHUP would end it.
   */
  const upstreamOf = async (node: string, address: string, port = 8080) => {
    const n = lab.layout.nginx.find((x) => x.name === node)!
    const direct = `http://${n.address}:${n.httpPort}/feed/1`
    const once = () => get(direct).then((r) => `${r.status} ${r.body}`, (e: Error) => `error ${e.message}`)
    // Four answers in a row, so one from an old worker's round robin cannot pass for the new config.
    const answer = async () => [...new Set([await once(), await once(), await once(), await once()])].join(' | ')
    await until(`${node} answers`, answer, (a) => !a.startsWith('error'), 5000)
    const files = nginxNodeFiles(labPaths.nginxDir(lab.dir, node))
    writeFileSync(files.upstreams, renderUpstreams([{address, port}]))
    process.kill(nginxPid(node), 'SIGHUP')
    const app = lab.layout.hosts.find((h) => h.address === address)
    await until(`${node} reloaded`, answer, (a) => (port === 8080 && app ? a === `200 ${app.name}` : /^5[0-9][0-9] /.test(a)), 5000)
  }

  before(async () => {
    lab = await startTestLab({hosts: 2, nginx: 2, cloud: true})
    upAt = Date.now()
    const config = {region: 'us-east-1', endpoint: lab.layout.cloud.endpoint, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}}
    elb = new ElasticLoadBalancingClient({...config, maxAttempts: 1})
    elbv2 = new ElasticLoadBalancingV2Client({...config, maxAttempts: 1})
    front = lab.layout.elb.url
    tgFront = lab.layout.elb.targetGroup.url
    ;[node1, node2] = lab.layout.nginx.map((n) => n.instanceId) as [string, string]
    for (const h of lab.layout.hosts) apps.push(new StandInApp(h.name, h.address))
    await Promise.all(apps.map((a) => a.start()))
    await Promise.all([upstreamOf('nginx1', lab.layout.hosts[0]!.address), upstreamOf('nginx2', lab.layout.hosts[1]!.address)])
  })
  after(async () => {
    elb?.destroy()
    elbv2?.destroy()
    await Promise.all(apps.map((a) => a.stop()))
    await lab?.stop()
  })

  it('lab up makes feed-lab over the NGINX nodes as EC2 lists them, and writes its lb section', async () => {
    const early = await health()
    const ec2 = new EC2Client({region: 'us-east-1', endpoint: lab.layout.cloud.endpoint, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}})
    const listed = await ec2.send(new DescribeInstancesCommand({Filters: [{Name: 'tag:Role', Values: ['nginx']}]}))
    ec2.destroy()
    const nginxIds = (listed.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId!).sort()
    const [lb] = (await elb.send(new DescribeLoadBalancersCommand({LoadBalancerNames: ['feed-lab']}))).LoadBalancerDescriptions ?? []
    assert.deepEqual(lb?.Instances?.map((i) => i.InstanceId).sort(), nginxIds)
    assert.deepEqual(lb?.HealthCheck, {Target: 'TCP:8080', Interval: 5, Timeout: 2, UnhealthyThreshold: 2, HealthyThreshold: 2})
    assert.deepEqual(lb?.ListenerDescriptions?.[0]?.Listener, {Protocol: 'HTTP', LoadBalancerPort: 80, InstanceProtocol: 'HTTP', InstancePort: 8080})
    const attrs = await elb.send(new DescribeLoadBalancerAttributesCommand({LoadBalancerName: 'feed-lab'}))
    assert.deepEqual(attrs.LoadBalancerAttributes?.ConnectionDraining, {Enabled: true, Timeout: 5})
    // A node is registered forced down and needs 2 passed checks 5 s apart: it cannot be InService yet.
    if (Date.now() - upAt < 4000) {
      for (const id of nginxIds) assert.deepEqual(early[id], {State: 'OutOfService', ReasonCode: 'ELB', Description: 'Instance registration is still in progress.'})
    }
    const yml = parse(readFileSync(lab.configFile, 'utf8')) as {environments: {lab: {lb: unknown}}}
    assert.deepEqual(yml.environments.lab.lb, {provider: 'classic', name: 'feed-lab'})
    const [tg] = (await elbv2.send(new DescribeTargetGroupsCommand({Names: ['feed-lab-tg']}))).TargetGroups ?? []
    assert.equal(tg?.TargetGroupArn, labTargetGroupArn())
    assert.equal(tg?.HealthCheckProtocol, 'TCP')
    const tgAttrs = await elbv2.send(new DescribeTargetGroupAttributesCommand({TargetGroupArn: tg?.TargetGroupArn}))
    assert.equal(tgAttrs.Attributes?.find((a) => a.Key === 'deregistration_delay.timeout_seconds')?.Value, '5')
  })

  it("answers AWS's error codes through the SDK's exceptions", async () => {
    const err = async (p: Promise<unknown>) => p.then(() => assert.fail('expected an error'), (e: Error & {Code?: string}) => e)
    const notFound = await err(elb.send(new DescribeInstanceHealthCommand({LoadBalancerName: 'nope'})))
    assert.equal(notFound.name, 'AccessPointNotFoundException')
    assert.equal(notFound.message, "There is no ACTIVE Load Balancer named 'nope'")
    const badInstance = await err(elb.send(new RegisterInstancesWithLoadBalancerCommand({LoadBalancerName: 'feed-lab', Instances: [{InstanceId: 'i-0123456789abcdef0'}]})))
    assert.equal(badInstance.name, 'InvalidEndPointException')
    const badCheck = await err(
      elb.send(new ConfigureHealthCheckCommand({LoadBalancerName: 'feed-lab', HealthCheck: {Target: 'HTTP:8080', Interval: 5, Timeout: 2, HealthyThreshold: 2, UnhealthyThreshold: 2}})),
    )
    assert.equal(badCheck.name, 'ValidationError')
    const noGroup = await err(elbv2.send(new DescribeTargetHealthCommand({TargetGroupArn: labTargetGroupArn().replace('feed-lab-tg', 'other')})))
    assert.equal(noGroup.name, 'TargetGroupNotFoundException')
    const badTarget = await err(elbv2.send(new RegisterTargetsCommand({TargetGroupArn: labTargetGroupArn(), Targets: [{Id: 'i-0123456789abcdef0'}]})))
    assert.equal(badTarget.name, 'InvalidTargetException')
    // Nothing above changed the registrations.
    assert.deepEqual(Object.keys(await health()).sort(), [node1, node2].sort())
  })

  it('injects Throttling on every Nth call and slow answers through cloud.json, and logs every request', async () => {
    const since = new Date().toISOString()
    const cloud = await readCloudFile(lab.dir)
    await writeCloudFile(lab.dir, {...cloud, faults: {throttleEvery: 2, services: ['elasticloadbalancing']}})
    const outcomes: string[] = []
    for (let i = 0; i < 4; i++) {
      outcomes.push(await elb.send(new DescribeLoadBalancersCommand({})).then(() => 'ok', (e: Error) => `${e.name}: ${e.message}`))
    }
    assert.deepEqual(outcomes, ['ok', 'Throttling: Rate exceeded', 'ok', 'Throttling: Rate exceeded'])
    // The SDK's own retry strategy gets through a throttled call.
    const retrying = new ElasticLoadBalancingClient({region: 'us-east-1', endpoint: lab.layout.cloud.endpoint, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}, maxAttempts: 3})
    await retrying.send(new DescribeLoadBalancersCommand({}))
    await retrying.send(new DescribeLoadBalancersCommand({}))
    retrying.destroy()
    await writeCloudFile(lab.dir, {...cloud, faults: {delayMs: 300, actions: ['DescribeInstanceHealth']}})
    const t0 = Date.now()
    await health()
    assert.ok(Date.now() - t0 >= 300, 'answered after the injected delay')
    await writeCloudFile(lab.dir, {...cloud, faults: {error: {code: 'ExpiredToken', message: 'The security token included in the request is expired', status: 403}}})
    const expired = await elb.send(new DescribeLoadBalancersCommand({})).then(() => undefined, (e: Error & {$metadata?: {httpStatusCode?: number}}) => e)
    assert.equal(expired?.name, 'ExpiredToken')
    assert.equal(expired?.$metadata?.httpStatusCode, 403)
    await writeCloudFile(lab.dir, cloud)
    const log = readRequestLog(lab.dir, since).filter((r) => r.service === 'elasticloadbalancing')
    assert.deepEqual(
      log.slice(0, 4).map((r) => [r.action, r.status, r.code ?? '']),
      [
        ['DescribeLoadBalancers', 200, ''],
        ['DescribeLoadBalancers', 400, 'Throttling'],
        ['DescribeLoadBalancers', 200, ''],
        ['DescribeLoadBalancers', 400, 'Throttling'],
      ],
    )
    assert.equal(log.filter((r) => r.code === 'Throttling').length, 3, 'the retried call was throttled once, then answered')
    assert.ok(log.every((r) => r.version === '2012-06-01'))
  })

  it('ConfigureHealthCheck becomes HAProxy’s check (inter, timeout check, rise, fall) in a reload that keeps the pid and the states', async () => {
    const {haproxy} = labDataPlane(lab.dir, lab.layout)
    const master = readState(lab.dir)!.processes.find((p) => p.component === 'haproxy')!.pid
    const check = (Target: string, Interval: number, Timeout: number, HealthyThreshold: number, UnhealthyThreshold: number) =>
      elb.send(new ConfigureHealthCheckCommand({LoadBalancerName: 'feed-lab', HealthCheck: {Target, Interval, Timeout, HealthyThreshold, UnhealthyThreshold}}))
    const before = await states()
    await check('HTTP:8080/nginx-health', 7, 3, 3, 4)
    const cfg = readFileSync(haproxy.config, 'utf8')
    assert.match(cfg, /backend elb-feed-lab\n {2}balance roundrobin\n {2}timeout check 3s\n {2}option httpchk GET \/nginx-health\n {2}http-check expect status 200\n/)
    const servers = [...(await serverStates(haproxy.socket)).values()].filter((s) => s.backend === 'elb-feed-lab')
    assert.deepEqual(servers.map((s) => [s.rise, s.fall]), [[3, 4], [3, 4]])
    assert.equal(readState(lab.dir)!.processes.find((p) => p.component === 'haproxy')!.pid, master)
    // At once after the first: a master still finishing one reload drops the next SIGUSR2, so the endpoint signals until the new config runs.
    await check('TCP:8080', 5, 2, 2, 2)
    assert.doesNotMatch(readFileSync(haproxy.config, 'utf8'), /httpchk/)
    const running = [...(await serverStates(haproxy.socket)).values()].filter((s) => s.backend === 'elb-feed-lab')
    assert.deepEqual(running.map((s) => [s.rise, s.fall]), [[2, 2], [2, 2]], 'the running HAProxy has the second check')
    const after = await states()
    // Across both reloads each node kept its state, or moved on by its checks (registering → InService).
    for (const id of [node1, node2]) assert.ok(after[id] === before[id] || after[id] === 'InService', `${id}: ${before[id]} → ${after[id]}`)
  })

  it('forwards to InService nodes only; deregistering drains the in-flight request, then the node takes no traffic', async () => {
    await until('both InService', states, (s) => s[node1] === 'InService' && s[node2] === 'InService')
    assert.deepEqual(await served(front), ['app1', 'app2'])
    // Two slow requests: round robin gives one to each node; deregister nginx2 while its request is in flight.
    const slow = [get(`${front}/slow?ms=1500`), get(`${front}/slow?ms=1500`)]
    await new Promise((r) => setTimeout(r, 300))
    const t0 = Date.now()
    await elb.send(new DeregisterInstancesFromLoadBalancerCommand({LoadBalancerName: 'feed-lab', Instances: [{InstanceId: node2}]}))
    assert.deepEqual((await health([node2]))[node2], {State: 'InService', ReasonCode: 'ELB', Description: 'Instance deregistration currently in progress.'})
    assert.deepEqual(Object.keys(await health()), [node1], 'a deregistering node is no longer listed as registered')
    assert.deepEqual(await served(front), ['app1'], 'no new request goes to the draining node')
    assert.deepEqual((await Promise.all(slow)).map((r) => `${r.status} ${r.body}`).sort(), ['200 app1', '200 app2'], 'the in-flight request finished')
    // Its connections gone, the node leaves before the 5 s draining timeout.
    await until('nginx2 out', () => health([node2]), (h) => h[node2]?.Description === 'Instance is not currently registered with the LoadBalancer.', 3000)
    assert.ok(Date.now() - t0 < 5000, `left after ${Date.now() - t0} ms`)
    assert.equal((await health([node2]))[node2]?.State, 'OutOfService')
  })

  it('cuts what is still running when the draining timeout passes', async () => {
    await elb.send(new ModifyLoadBalancerAttributesCommand({LoadBalancerName: 'feed-lab', LoadBalancerAttributes: {ConnectionDraining: {Enabled: true, Timeout: 1}}}))
    // Only nginx1 is registered: the slow request is on it.
    const slow = get(`${front}/slow?ms=4000`).then((r) => `${r.status}`, (e: Error) => `error: ${e.message}`)
    await new Promise((r) => setTimeout(r, 300))
    const t0 = Date.now()
    await elb.send(new DeregisterInstancesFromLoadBalancerCommand({LoadBalancerName: 'feed-lab', Instances: [{InstanceId: node1}]}))
    const outcome = await slow
    assert.ok(Date.now() - t0 < 2500, `cut after ${Date.now() - t0} ms`)
    assert.notEqual(outcome, '200', 'the request still running at the timeout was cut')
    assert.equal((await served(front, 2))[0], '503', 'no node: HAProxy answers 503')
    await elb.send(new ModifyLoadBalancerAttributesCommand({LoadBalancerName: 'feed-lab', LoadBalancerAttributes: {ConnectionDraining: {Enabled: true, Timeout: 5}}}))
    // Registered again: out until HealthyThreshold checks pass, then in.
    await elb.send(new RegisterInstancesWithLoadBalancerCommand({LoadBalancerName: 'feed-lab', Instances: [{InstanceId: node1}, {InstanceId: node2}]}))
    const h = await health()
    for (const id of [node1, node2]) assert.deepEqual(h[id], {State: 'OutOfService', ReasonCode: 'ELB', Description: 'Instance registration is still in progress.'})
  })

  it('the target group (ELBv2) drives its own backend on :8001 the same way', async () => {
    const arn = labTargetGroupArn()
    const tgHealth = async () => {
      const out = await elbv2.send(new DescribeTargetHealthCommand({TargetGroupArn: arn, Targets: [{Id: node1}, {Id: node2}]}))
      return Object.fromEntries((out.TargetHealthDescriptions ?? []).map((d) => [d.Target!.Id!, d.TargetHealth!]))
    }
    await until('targets healthy', tgHealth, (h) => h[node1]?.State === 'healthy' && h[node2]?.State === 'healthy')
    assert.deepEqual(await served(tgFront), ['app1', 'app2'])
    await elbv2.send(new DeregisterTargetsCommand({TargetGroupArn: arn, Targets: [{Id: node2, Port: 8080}]}))
    assert.deepEqual(await served(tgFront), ['app1'])
    await until('nginx2 unused', tgHealth, (h) => h[node2]?.Reason === 'Target.NotRegistered', 3000)
    assert.deepEqual((await tgHealth())[node2], {State: 'unused', Reason: 'Target.NotRegistered', Description: 'Target is not registered to the target group'})
    await elbv2.send(new RegisterTargetsCommand({TargetGroupArn: arn, Targets: [{Id: node2, Port: 8080}]}))
    assert.deepEqual((await tgHealth())[node2], {State: 'initial', Reason: 'Elb.RegistrationInProgress', Description: 'Target registration is in progress'})
  })

  it('a stopped nginx fails the check; a node whose nginx answers but reaches no app host stays InService under TCP:8080', async () => {
    // nginx2 now proxies to a port nothing listens on: its /nginx-health fails, its port still accepts.
    await upstreamOf('nginx2', lab.layout.hosts[1]!.address, 9)
    process.kill(nginxPid('nginx1'), 'SIGTERM')
    const h = await until('nginx1 out, nginx2 in', () => health(), (x) => x[node1]?.ReasonCode === 'Instance' && x[node2]?.State === 'InService', 20_000)
    assert.deepEqual(h[node1], {State: 'OutOfService', ReasonCode: 'Instance', Description: 'Instance has failed at least the UnhealthyThreshold number of health checks consecutively.'})
    const deep = await get(`http://${lab.layout.nginx[1]!.address}:8080/nginx-health`)
    assert.ok(deep.status >= 500, `nginx2's deep health is ${deep.status}`)
    assert.deepEqual(h[node2], {State: 'InService', ReasonCode: 'N/A', Description: 'N/A'})
    const tg = await elbv2.send(new DescribeTargetHealthCommand({TargetGroupArn: labTargetGroupArn(), Targets: [{Id: node1}]}))
    assert.deepEqual(tg.TargetHealthDescriptions?.[0]?.TargetHealth, {State: 'unhealthy', Reason: 'Target.FailedHealthChecks', Description: 'Health checks failed'})
    // Started again (lab up restarts what died), it passes HealthyThreshold checks and is back in.
    await labUp({dir: lab.dir, net: lab.net})
    await until('nginx1 back', () => health([node1]), (x) => x[node1]?.State === 'InService', 15_000)
  })
})
