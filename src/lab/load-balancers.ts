import {
  AccessPointNotFoundException,
  ConfigureHealthCheckCommand,
  CreateLoadBalancerCommand,
  DeregisterInstancesFromLoadBalancerCommand,
  DescribeLoadBalancersCommand,
  ElasticLoadBalancingClient,
  ModifyLoadBalancerAttributesCommand,
  RegisterInstancesWithLoadBalancerCommand,
} from '@aws-sdk/client-elastic-load-balancing'
import {
  CreateTargetGroupCommand,
  DeregisterTargetsCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  ModifyTargetGroupAttributesCommand,
  RegisterTargetsCommand,
  TargetGroupNotFoundException,
} from '@aws-sdk/client-elastic-load-balancing-v2'

import {HTTP_PORT, LAB_LB_NAME, LAB_TARGET_GROUP_NAME, instanceIdFor, type LabLayout} from './layout.js'
import {labDrainingSeconds, labHealthCheck, labRegion as region} from './lb-settings.js'

/**
 * The lab's load balancers, made through the lab endpoint's own ELB APIs with the real SDK clients
 * (the way a user would make them on AWS): `feed-lab` (Classic ELB) and `feed-lab-tg` (an ELBv2
 * target group), both over the NGINX nodes with a shallow TCP:8080 check every 5 s (2 passes in, 2
 * fails out) and 5 s of connection draining. Only what `lab up` creates gets its nodes registered:
 * a later up leaves registrations to `feedops lb` and only drops the nodes the lab no longer has.
 */

function clients(layout: LabLayout) {
  const config = {region, endpoint: layout.cloud.endpoint, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}, maxAttempts: 3}
  return {elb: new ElasticLoadBalancingClient(config), elbv2: new ElasticLoadBalancingV2Client(config)}
}

/** Is this an instance id of the lab's (its net), and not one of the NGINX nodes it has now? */
function goneFromLab(layout: LabLayout, id: string): boolean {
  const prefix = instanceIdFor(layout.net, 0).slice(0, -8)
  return id.startsWith(prefix) && !layout.nginx.some((n) => n.instanceId === id)
}

export async function ensureLabLoadBalancers(layout: LabLayout, progress: (msg: string) => void): Promise<void> {
  const {elb, elbv2} = clients(layout)
  const nodes = layout.nginx.map((n) => n.instanceId)
  try {
    await ensureClassic(elb, layout, nodes, progress)
    await ensureTargetGroup(elbv2, layout, nodes, progress)
  } finally {
    elb.destroy()
    elbv2.destroy()
  }
}

async function ensureClassic(elb: ElasticLoadBalancingClient, layout: LabLayout, nodes: string[], progress: (msg: string) => void): Promise<void> {
  const found = await elb.send(new DescribeLoadBalancersCommand({LoadBalancerNames: [LAB_LB_NAME]})).catch((err: unknown) => {
    if (err instanceof AccessPointNotFoundException) return undefined
    throw err
  })
  const lb = found?.LoadBalancerDescriptions?.[0]
  if (lb) {
    const gone = (lb.Instances ?? []).map((i) => i.InstanceId!).filter((id) => goneFromLab(layout, id))
    if (gone.length > 0) {
      await elb.send(new DeregisterInstancesFromLoadBalancerCommand({LoadBalancerName: LAB_LB_NAME, Instances: gone.map((InstanceId) => ({InstanceId}))}))
    }
    return
  }
  progress(`ELB: creating ${LAB_LB_NAME} over ${nodes.length} NGINX node${nodes.length === 1 ? '' : 's'}`)
  await elb.send(
    new CreateLoadBalancerCommand({
      LoadBalancerName: LAB_LB_NAME,
      Listeners: [{Protocol: 'HTTP', LoadBalancerPort: 80, InstanceProtocol: 'HTTP', InstancePort: HTTP_PORT}],
      AvailabilityZones: [`${region}a`],
    }),
  )
  const c = labHealthCheck
  await elb.send(
    new ConfigureHealthCheckCommand({
      LoadBalancerName: LAB_LB_NAME,
      HealthCheck: {Target: c.target, Interval: c.intervalSeconds, Timeout: c.timeoutSeconds, HealthyThreshold: c.healthyThreshold, UnhealthyThreshold: c.unhealthyThreshold},
    }),
  )
  await elb.send(
    new ModifyLoadBalancerAttributesCommand({
      LoadBalancerName: LAB_LB_NAME,
      LoadBalancerAttributes: {ConnectionDraining: {Enabled: true, Timeout: labDrainingSeconds}},
    }),
  )
  if (nodes.length > 0) {
    await elb.send(new RegisterInstancesWithLoadBalancerCommand({LoadBalancerName: LAB_LB_NAME, Instances: nodes.map((InstanceId) => ({InstanceId}))}))
  }
}

async function ensureTargetGroup(elbv2: ElasticLoadBalancingV2Client, layout: LabLayout, nodes: string[], progress: (msg: string) => void): Promise<void> {
  const found = await elbv2.send(new DescribeTargetGroupsCommand({Names: [LAB_TARGET_GROUP_NAME]})).catch((err: unknown) => {
    if (err instanceof TargetGroupNotFoundException) return undefined
    throw err
  })
  const tg = found?.TargetGroups?.[0]
  if (tg) {
    const health = await elbv2.send(new DescribeTargetHealthCommand({TargetGroupArn: tg.TargetGroupArn}))
    const gone = (health.TargetHealthDescriptions ?? []).map((d) => d.Target!).filter((t) => goneFromLab(layout, t.Id!))
    if (gone.length > 0) await elbv2.send(new DeregisterTargetsCommand({TargetGroupArn: tg.TargetGroupArn, Targets: gone}))
    return
  }
  progress(`ELB: creating target group ${LAB_TARGET_GROUP_NAME}`)
  const c = labHealthCheck
  const created = await elbv2.send(
    new CreateTargetGroupCommand({
      Name: LAB_TARGET_GROUP_NAME,
      Protocol: 'TCP',
      Port: HTTP_PORT,
      VpcId: 'vpc-0lab00000000000',
      TargetType: 'instance',
      HealthCheckProtocol: 'TCP',
      HealthCheckIntervalSeconds: c.intervalSeconds,
      HealthCheckTimeoutSeconds: c.timeoutSeconds,
      HealthyThresholdCount: c.healthyThreshold,
      UnhealthyThresholdCount: c.unhealthyThreshold,
    }),
  )
  const arn = created.TargetGroups?.[0]?.TargetGroupArn
  if (!arn) throw new Error('CreateTargetGroup answered no target group')
  await elbv2.send(
    new ModifyTargetGroupAttributesCommand({TargetGroupArn: arn, Attributes: [{Key: 'deregistration_delay.timeout_seconds', Value: String(labDrainingSeconds)}]}),
  )
  if (nodes.length > 0) await elbv2.send(new RegisterTargetsCommand({TargetGroupArn: arn, Targets: nodes.map((Id) => ({Id, Port: HTTP_PORT}))}))
}
