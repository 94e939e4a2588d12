import type {ElasticLoadBalancingClient} from '@aws-sdk/client-elastic-load-balancing'

import type {ClassicLbSettings} from '../config/lb.js'
import type {AwsSettings} from '../config/schema.js'
import {lbApiError} from './errors.js'
import type {LbProvider, Member, MemberState} from './provider.js'
import {classicSdk, lbClientConfig} from './sdk.js'

/** What DescribeInstanceHealth says of an instance whose deregistration is draining its connections. */
const DEREGISTERING = /deregistration currently in progress/i

/**
 * Classic ELB: instances by EC2 instance id. The members are the load balancer's instances with
 * DescribeInstanceHealth's State, ReasonCode and Description; one whose Description says its
 * deregistration is in progress is still draining connections.
 */
export function classicProvider(lb: ClassicLbSettings, aws: AwsSettings): LbProvider {
  const sdk = classicSdk()
  const client: ElasticLoadBalancingClient = new sdk.ElasticLoadBalancingClient(
    lbClientConfig(aws, {maxAttempts: lb.apiMaxAttempts, requestTimeoutMs: lb.apiTimeoutMs}),
  )
  const label = `Classic ELB ${lb.name}`
  const call = async <T>(action: string, send: () => Promise<T>): Promise<T> => {
    try {
      return await send()
    } catch (err) {
      throw lbApiError(err, action, label, aws, lb.apiMaxAttempts)
    }
  }
  const LoadBalancerName = lb.name
  return {
    kind: 'classic',
    label,
    async members() {
      // Both at once (one round trip): the load balancer's instance list, and their health.
      const [described, health] = await Promise.all([
        call('DescribeLoadBalancers', () => client.send(new sdk.DescribeLoadBalancersCommand({LoadBalancerNames: [LoadBalancerName]}))),
        call('DescribeInstanceHealth', () => client.send(new sdk.DescribeInstanceHealthCommand({LoadBalancerName}))),
      ])
      const registered = new Set((described.LoadBalancerDescriptions?.[0]?.Instances ?? []).map((i) => i.InstanceId ?? ''))
      const members: Member[] = []
      for (const s of health.InstanceStates ?? []) {
        if (!s.InstanceId) continue
        registered.delete(s.InstanceId)
        members.push(classicMember(s.InstanceId, s.State ?? 'Unknown', s.ReasonCode, s.Description))
      }
      // Listed as registered but not yet in the health report: the ELB has not checked it yet.
      for (const id of registered) if (id) members.push({id, state: 'Unknown', rawState: 'Unknown', description: 'not yet checked by the load balancer'})
      return members
    },
    async health(ids) {
      if (ids.length === 0) return []
      const health = await call('DescribeInstanceHealth', () =>
        client.send(new sdk.DescribeInstanceHealthCommand({LoadBalancerName, Instances: ids.map((InstanceId) => ({InstanceId}))})),
      )
      return (health.InstanceStates ?? []).filter((s) => s.InstanceId).map((s) => classicMember(s.InstanceId!, s.State ?? 'Unknown', s.ReasonCode, s.Description))
    },
    async register(ids) {
      if (ids.length === 0) return
      await call('RegisterInstancesWithLoadBalancer', () =>
        client.send(new sdk.RegisterInstancesWithLoadBalancerCommand({LoadBalancerName, Instances: ids.map((InstanceId) => ({InstanceId}))})),
      )
    },
    async deregister(ids) {
      if (ids.length === 0) return
      await call('DeregisterInstancesFromLoadBalancer', () =>
        client.send(new sdk.DeregisterInstancesFromLoadBalancerCommand({LoadBalancerName, Instances: ids.map((InstanceId) => ({InstanceId}))})),
      )
    },
    async drainingSeconds() {
      const out = await call('DescribeLoadBalancerAttributes', () => client.send(new sdk.DescribeLoadBalancerAttributesCommand({LoadBalancerName})))
      const draining = out.LoadBalancerAttributes?.ConnectionDraining
      return draining?.Enabled ? (draining.Timeout ?? 300) : 0
    },
    close: () => client.destroy(),
  }
}

export function classicMember(id: string, state: string, reasonCode?: string, description?: string): Member {
  let normalized: MemberState = state === 'InService' ? 'InService' : state === 'OutOfService' ? 'OutOfService' : 'Unknown'
  if (description && DEREGISTERING.test(description)) normalized = 'Draining'
  return {id, state: normalized, rawState: state, ...(reasonCode ? {reasonCode} : {}), ...(description ? {description} : {})}
}
