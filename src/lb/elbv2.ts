import type {ElasticLoadBalancingV2Client, TargetDescription} from '@aws-sdk/client-elastic-load-balancing-v2'

import type {Elbv2LbSettings} from '../config/lb.js'
import type {AwsSettings} from '../config/schema.js'
import {lbApiError} from './errors.js'
import type {LbProvider, Member, MemberState} from './provider.js'
import {elbv2Sdk, lbClientConfig} from './sdk.js'

const DEREGISTRATION_DELAY = 'deregistration_delay.timeout_seconds'

/**
 * ELBv2 (ALB/NLB) target group: targets by instance id or address. DescribeTargetHealth lists every
 * registered target, including those draining (state `draining`) for the deregistration delay.
 */
export function elbv2Provider(lb: Elbv2LbSettings, aws: AwsSettings): LbProvider {
  const sdk = elbv2Sdk()
  const client: ElasticLoadBalancingV2Client = new sdk.ElasticLoadBalancingV2Client(
    lbClientConfig(aws, {maxAttempts: lb.apiMaxAttempts, requestTimeoutMs: lb.apiTimeoutMs}),
  )
  const TargetGroupArn = lb.targetGroupArn
  const label = `target group ${TargetGroupArn.split(':').at(-1)!.replace(/^targetgroup\//, '')}`
  const call = async <T>(action: string, send: () => Promise<T>): Promise<T> => {
    try {
      return await send()
    } catch (err) {
      throw lbApiError(err, action, label, aws, lb.apiMaxAttempts)
    }
  }
  const targets = (ids: readonly string[]): TargetDescription[] => ids.map((Id) => ({Id, ...(lb.targetPort ? {Port: lb.targetPort} : {})}))
  return {
    kind: 'elbv2',
    label,
    async members() {
      const out = await call('DescribeTargetHealth', () => client.send(new sdk.DescribeTargetHealthCommand({TargetGroupArn})))
      const members: Member[] = []
      for (const d of out.TargetHealthDescriptions ?? []) {
        const id = d.Target?.Id
        if (!id) continue
        members.push(elbv2Member(id, d.TargetHealth?.State ?? 'unavailable', d.TargetHealth?.Reason, d.TargetHealth?.Description))
      }
      return members
    },
    async health(ids) {
      if (ids.length === 0) return []
      const out = await call('DescribeTargetHealth', () => client.send(new sdk.DescribeTargetHealthCommand({TargetGroupArn, Targets: targets(ids)})))
      return (out.TargetHealthDescriptions ?? [])
        .filter((d) => d.Target?.Id)
        .map((d) => elbv2Member(d.Target!.Id!, d.TargetHealth?.State ?? 'unavailable', d.TargetHealth?.Reason, d.TargetHealth?.Description))
    },
    async register(ids) {
      if (ids.length === 0) return
      await call('RegisterTargets', () => client.send(new sdk.RegisterTargetsCommand({TargetGroupArn, Targets: targets(ids)})))
    },
    async deregister(ids) {
      if (ids.length === 0) return
      await call('DeregisterTargets', () => client.send(new sdk.DeregisterTargetsCommand({TargetGroupArn, Targets: targets(ids)})))
    },
    async drainingSeconds() {
      const out = await call('DescribeTargetGroupAttributes', () => client.send(new sdk.DescribeTargetGroupAttributesCommand({TargetGroupArn})))
      const value = out.Attributes?.find((a) => a.Key === DEREGISTRATION_DELAY)?.Value
      // AWS's default when the attribute is not reported.
      const seconds = value === undefined ? 300 : Number(value)
      return Number.isFinite(seconds) && seconds > 0 ? seconds : 0
    },
    close: () => client.destroy(),
  }
}

const STATES: Record<string, MemberState> = {
  healthy: 'InService',
  unhealthy: 'OutOfService',
  draining: 'Draining',
  initial: 'Unknown',
  unused: 'Unknown',
  unavailable: 'Unknown',
  'unhealthy.draining': 'Draining',
}

export function elbv2Member(id: string, state: string, reason?: string, description?: string): Member {
  return {id, state: STATES[state] ?? 'Unknown', rawState: state, ...(reason ? {reasonCode: reason} : {}), ...(description ? {description} : {})}
}
