import {
  CreateLoadBalancerCommand,
  DeregisterInstancesFromLoadBalancerCommand,
  DescribeInstanceHealthCommand,
  DescribeLoadBalancersCommand,
  ElasticLoadBalancingClient,
  ModifyLoadBalancerAttributesCommand,
  RegisterInstancesWithLoadBalancerCommand,
} from '@aws-sdk/client-elastic-load-balancing'
import {
  CreateTargetGroupCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  ModifyTargetGroupAttributesCommand,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2'
import assert from 'node:assert/strict'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import {writeCloudFile} from '../../src/lab/cloud/cloud-file.js'
import {readRequestLog} from '../../src/lab/cloud/request-log.js'
import {startFixtureCloud, type FixtureCloud, type InstanceInput} from '../inventory/cloud-fixture.js'

/**
 * The ELB APIs' control plane through the real SDK clients, on an in-process endpoint with no HAProxy
 * (test/lab/elb.test.ts has the data plane): AWS's defaults, idempotent creates, paging, the EC2
 * instance states, and what a data plane that does not answer looks like.
 */

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

const instances: InstanceInput[] = [
  {instanceId: 'i-0aaa000000000001', privateIp: '127.20.2.1', state: 'running'},
  {instanceId: 'i-0aaa000000000002', privateIp: '127.20.2.2', state: 'running'},
  {instanceId: 'i-0aaa000000000003', privateIp: '127.20.2.3', state: 'stopped'},
]
const [a, b, stopped] = instances.map((i) => i.instanceId) as [string, string, string]
const listeners = [{Protocol: 'HTTP', LoadBalancerPort: 80, InstanceProtocol: 'HTTP', InstancePort: 8080}]

async function failure(p: Promise<unknown>): Promise<Error> {
  return p.then(() => assert.fail('expected an AWS error'), (e: Error) => e)
}

describe('lab ELB APIs without a data plane (in-process endpoint)', () => {
  let cloud: FixtureCloud
  let elb: ElasticLoadBalancingClient
  let elbv2: ElasticLoadBalancingV2Client
  before(async () => {
    cloud = await startFixtureCloud(instances)
    const config = {region: 'us-east-1', endpoint: cloud.endpoint.url, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}, maxAttempts: 1}
    elb = new ElasticLoadBalancingClient(config)
    elbv2 = new ElasticLoadBalancingV2Client(config)
  })
  after(async () => {
    elb.destroy()
    elbv2.destroy()
    await cloud.stop()
  })

  it("creates a Classic load balancer with AWS's defaults, idempotently, and refuses the same name with other listeners", async () => {
    const first = await elb.send(new CreateLoadBalancerCommand({LoadBalancerName: 'web', Listeners: listeners, AvailabilityZones: ['us-east-1a']}))
    const again = await elb.send(new CreateLoadBalancerCommand({LoadBalancerName: 'web', Listeners: listeners, AvailabilityZones: ['us-east-1a']}))
    assert.equal(first.DNSName, again.DNSName)
    assert.match(first.DNSName ?? '', /^web-[0-9]{10}\.us-east-1\.elb\.amazonaws\.com$/)
    const dup = await failure(elb.send(new CreateLoadBalancerCommand({LoadBalancerName: 'web', Listeners: [{...listeners[0]!, InstancePort: 9090}], AvailabilityZones: ['us-east-1a']})))
    assert.equal(dup.name, 'DuplicateAccessPointNameException')
    const [lb] = (await elb.send(new DescribeLoadBalancersCommand({LoadBalancerNames: ['web']}))).LoadBalancerDescriptions ?? []
    assert.deepEqual(lb?.HealthCheck, {Target: 'TCP:8080', Interval: 30, Timeout: 5, UnhealthyThreshold: 2, HealthyThreshold: 10})
    assert.ok(lb?.CreatedTime instanceof Date)
    const bad = await failure(elb.send(new ModifyLoadBalancerAttributesCommand({LoadBalancerName: 'web', LoadBalancerAttributes: {ConnectionDraining: {Enabled: true, Timeout: 0}}})))
    assert.equal(bad.name, 'ValidationError')
  })

  it('pages DescribeLoadBalancers with a marker that only fits its own listing', async () => {
    await elb.send(new CreateLoadBalancerCommand({LoadBalancerName: 'api', Listeners: listeners, AvailabilityZones: ['us-east-1a']}))
    const p1 = await elb.send(new DescribeLoadBalancersCommand({PageSize: 1}))
    const p2 = await elb.send(new DescribeLoadBalancersCommand({PageSize: 1, Marker: p1.NextMarker}))
    assert.deepEqual([...(p1.LoadBalancerDescriptions ?? []), ...(p2.LoadBalancerDescriptions ?? [])].map((l) => l.LoadBalancerName), ['web', 'api'])
    assert.equal(p2.NextMarker, undefined)
    assert.equal((await failure(elb.send(new DescribeLoadBalancersCommand({LoadBalancerNames: ['web'], Marker: p1.NextMarker})))).name, 'ValidationError')
  })

  it("registers running instances only, and reports the EC2 state, registration and a data plane that does not answer", async () => {
    const refused = await failure(elb.send(new RegisterInstancesWithLoadBalancerCommand({LoadBalancerName: 'web', Instances: [{InstanceId: stopped}]})))
    assert.equal(refused.name, 'InvalidEndPointException')
    assert.equal(refused.message, `EC2 instance ${stopped} is not in running state.`)
    const reg = await elb.send(new RegisterInstancesWithLoadBalancerCommand({LoadBalancerName: 'web', Instances: [{InstanceId: a}, {InstanceId: b}]}))
    assert.deepEqual(reg.Instances?.map((i) => i.InstanceId), [a, b])
    // b stops; a's HAProxy socket is not there.
    await writeCloudFile(cloud.dir, {
      listen: {host: '127.0.0.1', port: 0},
      ec2: {instances: instances.map((i) => (i.instanceId === b ? {...i, state: 'stopped' as const} : i))},
      lb: {haproxy: {socket: path.join(cloud.dir, 'no.sock'), config: path.join(cloud.dir, 'h.cfg'), stateFile: path.join(cloud.dir, 's'), pidFile: path.join(cloud.dir, 'p')}, fronts: []},
    })
    const health = await elb.send(new DescribeInstanceHealthCommand({LoadBalancerName: 'web', Instances: [{InstanceId: a}, {InstanceId: b}, {InstanceId: stopped}]}))
    assert.deepEqual(health.InstanceStates, [
      {InstanceId: a, State: 'Unknown', ReasonCode: 'ELB', Description: 'A transient error occurred. Please try again later.'},
      {InstanceId: b, State: 'OutOfService', ReasonCode: 'Instance', Description: 'Instance is in stopped state.'},
      {InstanceId: stopped, State: 'OutOfService', ReasonCode: 'Instance', Description: 'Instance is in stopped state.'},
    ])
    await cloud.write(instances)
    // Draining off (AWS's default for a new load balancer): a deregistered instance is out at once.
    const left = await elb.send(new DeregisterInstancesFromLoadBalancerCommand({LoadBalancerName: 'web', Instances: [{InstanceId: b}]}))
    assert.deepEqual(left.Instances?.map((i) => i.InstanceId), [a])
    const out = await elb.send(new DescribeInstanceHealthCommand({LoadBalancerName: 'web', Instances: [{InstanceId: b}]}))
    assert.deepEqual(out.InstanceStates?.[0], {InstanceId: b, State: 'OutOfService', ReasonCode: 'ELB', Description: 'Instance is not currently registered with the LoadBalancer.'})
  })

  it('ELBv2: target groups with their defaults, not-found names, unused targets, attribute keys it does not know', async () => {
    const [tg] = (await elbv2.send(new CreateTargetGroupCommand({Name: 'web-tg', Protocol: 'HTTP', Port: 8080, VpcId: 'vpc-1'}))).TargetGroups ?? []
    assert.equal(tg?.HealthCheckPath, '/')
    assert.deepEqual([tg?.HealthCheckIntervalSeconds, tg?.HealthCheckTimeoutSeconds, tg?.HealthyThresholdCount, tg?.UnhealthyThresholdCount], [30, 5, 5, 2])
    assert.deepEqual(tg?.LoadBalancerArns, [], 'no front in this endpoint: no load balancer')
    assert.equal((await failure(elbv2.send(new DescribeTargetGroupsCommand({Names: ['nope']})))).name, 'TargetGroupNotFoundException')
    await elbv2.send(new RegisterTargetsCommand({TargetGroupArn: tg!.TargetGroupArn, Targets: [{Id: a}]}))
    const h = await elbv2.send(new DescribeTargetHealthCommand({TargetGroupArn: tg!.TargetGroupArn, Targets: [{Id: a}, {Id: stopped}]}))
    assert.deepEqual(h.TargetHealthDescriptions?.map((d) => d.TargetHealth), [
      {State: 'unused', Reason: 'Target.NotInUse', Description: 'Target group is not configured to receive traffic from the load balancer'},
      {State: 'unused', Reason: 'Target.InvalidState', Description: 'Target is in the stopped state'},
    ])
    const badKey = await failure(elbv2.send(new ModifyTargetGroupAttributesCommand({TargetGroupArn: tg!.TargetGroupArn, Attributes: [{Key: 'nope', Value: '1'}]})))
    assert.equal(badKey.name, 'InvalidConfigurationRequestException')
    const versions = new Set(readRequestLog(cloud.dir).filter((r) => r.action.includes('Target')).map((r) => r.version))
    assert.deepEqual([...versions], ['2015-12-01'])
  })
})
