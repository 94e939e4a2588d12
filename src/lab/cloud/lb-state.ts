import {existsSync} from 'node:fs'
import {readFile, rename, writeFile} from 'node:fs/promises'
import path from 'node:path'

/**
 * lb.json: the lab ELB's control plane, kept by the cloud endpoint in the lab dir. Both APIs
 * share one model: a Classic load balancer and an ELBv2 target group are each a *pool*, one
 * HAProxy backend whose servers are the pool's registered members. HAProxy is the data plane (and
 * the source of every health state); this file is what HAProxy's config is rendered from, so a
 * restarted HAProxy serves the same members, and what a deregistration still draining needs.
 */

export interface HealthCheck {
  protocol: 'TCP' | 'HTTP' | 'HTTPS' | 'SSL'
  port: number
  /** HTTP(S) only, starting with '/'. */
  path?: string
  intervalSeconds: number
  timeoutSeconds: number
  healthyThreshold: number
  unhealthyThreshold: number
}

export interface PoolMember {
  /** Instance id. */
  id: string
  /** The port traffic and checks go to on the instance (the listener's InstancePort, or the target's port). */
  port: number
  registeredAt: string
}

export interface DrainingMember extends PoolMember {
  since: string
  /** When remaining connections are cut (the draining timeout). */
  until: string
}

export interface ClassicListener {
  protocol: string
  loadBalancerPort: number
  instanceProtocol: string
  instancePort: number
}

interface PoolBase {
  name: string
  createdAt: string
  healthCheck: HealthCheck
  members: PoolMember[]
  draining: DrainingMember[]
}

export interface ClassicPool extends PoolBase {
  kind: 'classic'
  listeners: ClassicListener[]
  availabilityZones: string[]
  scheme: string
  attributes: {
    connectionDraining: {enabled: boolean; timeout: number}
    connectionSettings: {idleTimeout: number}
    crossZoneLoadBalancing: {enabled: boolean}
    accessLog: {enabled: boolean; s3BucketName?: string; emitInterval?: number; s3BucketPrefix?: string}
  }
}

export interface TargetGroupPool extends PoolBase {
  kind: 'targetgroup'
  arn: string
  protocol: string
  port: number
  vpcId: string
  /** 'traffic-port' or a number, as given. */
  healthCheckPort: string
  matcher: string
  loadBalancerArns: string[]
  /** Key → value, every attribute the lab keeps (deregistration_delay.timeout_seconds…). */
  attributes: Record<string, string>
}

export type Pool = ClassicPool | TargetGroupPool

export interface LbState {
  pools: Pool[]
}

export function lbStatePath(dir: string): string {
  return path.join(dir, 'lb.json')
}

/** The HAProxy backend a pool is: `elb-<name>` or `tg-<name>` (names may repeat across the two APIs). */
export function backendName(pool: Pick<Pool, 'kind' | 'name'>): string {
  return `${pool.kind === 'classic' ? 'elb' : 'tg'}-${pool.name}`
}

/** A member's HAProxy server name: the instance id, plus the port for a target group (one instance, two ports). */
export function serverName(pool: Pick<Pool, 'kind'>, member: Pick<PoolMember, 'id' | 'port'>): string {
  return pool.kind === 'classic' ? member.id : `${member.id}-${member.port}`
}

/** How long a deregistered member drains: 0 when draining is off. */
export function drainSeconds(pool: Pool): number {
  if (pool.kind === 'classic') return pool.attributes.connectionDraining.enabled ? pool.attributes.connectionDraining.timeout : 0
  return Number(pool.attributes['deregistration_delay.timeout_seconds'] ?? 300)
}

export async function readLbState(dir: string): Promise<LbState> {
  const file = lbStatePath(dir)
  if (!existsSync(file)) return {pools: []}
  const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<LbState>
  return {pools: Array.isArray(parsed.pools) ? parsed.pools : []}
}

export async function writeLbState(dir: string, state: LbState): Promise<void> {
  const file = lbStatePath(dir)
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`)
  await rename(tmp, file)
}

const queues = new Map<string, Promise<unknown>>()

/**
 * Runs `change` on lb.json with no other change of the same dir in between (in this process: the
 * endpoint is the file's only writer). The state is written back when `change` returns normally.
 */
export function changeLbState<T>(dir: string, change: (state: LbState) => Promise<T> | T): Promise<T> {
  const prev = queues.get(dir) ?? Promise.resolve()
  const next = prev.then(async () => {
    const state = await readLbState(dir)
    const result = await change(state)
    await writeLbState(dir, state)
    return result
  })
  const settled = next.catch(() => undefined)
  queues.set(dir, settled)
  void settled.then(() => {
    if (queues.get(dir) === settled) queues.delete(dir)
  })
  return next
}
