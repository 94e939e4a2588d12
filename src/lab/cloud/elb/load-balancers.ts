import {createHash} from 'node:crypto'

import {CloudApiError} from '../errors.js'
import {pageOf, reloadDataPlane, requiredParam, validationError} from '../lb-members.js'
import {changeLbState, readLbState, type ClassicPool, type HealthCheck, type LbState} from '../lb-state.js'
import {indexedStructs, indexedValues, integerParam, type QueryParams} from '../query-params.js'
import type {CloudRequest} from '../service.js'
import type {XmlObject} from '../xml.js'

/** Classic ELB: the load balancers themselves (create, describe, health check, attributes). */

export function findClassic(state: LbState, name: string): ClassicPool {
  const pool = state.pools.find((p): p is ClassicPool => p.kind === 'classic' && p.name === name)
  if (!pool) throw new CloudApiError('LoadBalancerNotFound', `There is no ACTIVE Load Balancer named '${name}'`)
  return pool
}

export function dnsName(name: string, region: string): string {
  const digits = BigInt(`0x${createHash('sha256').update(name).digest('hex').slice(0, 12)}`) % 10_000_000_000n
  return `${name}-${String(digits).padStart(10, '0')}.${region}.elb.amazonaws.com`
}

export async function createLoadBalancer(req: CloudRequest): Promise<XmlObject> {
  const name = requiredParam(req, 'LoadBalancerName')
  if (!/^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?$/.test(name)) {
    throw validationError(`LoadBalancerName '${name}' must have at most 32 characters, only letters, digits and hyphens, and must not begin or end with a hyphen.`)
  }
  const listeners = indexedStructs(req.params, 'Listeners.member').map((l) => {
    const protocol = (l.get('Protocol') ?? '').toUpperCase()
    const loadBalancerPort = Number(l.get('LoadBalancerPort'))
    const instancePort = Number(l.get('InstancePort'))
    if (!['HTTP', 'HTTPS', 'TCP', 'SSL'].includes(protocol)) throw validationError(`Invalid listener protocol '${l.get('Protocol') ?? ''}'.`)
    if (!isPort(loadBalancerPort) || !isPort(instancePort)) throw validationError('LoadBalancerPort and InstancePort must be between 1 and 65535.')
    return {protocol, loadBalancerPort, instanceProtocol: (l.get('InstanceProtocol') ?? protocol).toUpperCase(), instancePort}
  })
  if (listeners.length === 0) throw validationError("1 validation error detected: Value null at 'listeners' failed to satisfy constraint: Member must not be null")
  const zones = indexedValues(req.params, 'AvailabilityZones.member')
  const subnets = indexedValues(req.params, 'Subnets.member')
  if (zones.length === 0 && subnets.length === 0) throw validationError('Either AvailabilityZones or SubnetIds must be specified')
  return changeLbState(req.dir, async (state) => {
    const existing = state.pools.find((p): p is ClassicPool => p.kind === 'classic' && p.name === name)
    if (existing) {
      if (JSON.stringify(existing.listeners) !== JSON.stringify(listeners)) {
        throw new CloudApiError('DuplicateLoadBalancerName', `Load Balancer named '${name}' already exists and it is configured with different parameters.`)
      }
      return {DNSName: dnsName(name, req.region)}
    }
    const pool: ClassicPool = {
      kind: 'classic',
      name,
      createdAt: new Date().toISOString(),
      listeners,
      availabilityZones: zones.length > 0 ? zones : [`${req.region}a`],
      scheme: req.params.get('Scheme') ?? 'internet-facing',
      // A new load balancer's defaults, as AWS makes them.
      healthCheck: {protocol: 'TCP', port: listeners[0]!.instancePort, intervalSeconds: 30, timeoutSeconds: 5, healthyThreshold: 10, unhealthyThreshold: 2},
      attributes: {
        connectionDraining: {enabled: false, timeout: 300},
        connectionSettings: {idleTimeout: 60},
        crossZoneLoadBalancing: {enabled: false},
        accessLog: {enabled: false},
      },
      members: [],
      draining: [],
    }
    state.pools.push(pool)
    await reloadDataPlane(req, state) // its backend
    return {DNSName: dnsName(name, req.region)}
  })
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535
}

export async function describeLoadBalancers(req: CloudRequest): Promise<XmlObject> {
  const names = indexedValues(req.params, 'LoadBalancerNames.member')
  const pageSize = integerParam(req.params, 'PageSize') ?? 400
  if (pageSize < 1 || pageSize > 400) throw validationError('PageSize must be between 1 and 400.')
  const state = await readLbState(req.dir)
  const pools = names.length > 0 ? names.map((n) => findClassic(state, n)) : state.pools.filter((p): p is ClassicPool => p.kind === 'classic')
  const {page, next} = pageOf(pools, req.params.get('Marker'), pageSize, names.join(','))
  return {LoadBalancerDescriptions: {member: page.map((p) => describe(p, req.region))}, NextMarker: next}
}

function describe(p: ClassicPool, region: string): XmlObject {
  const dns = dnsName(p.name, region)
  return {
    LoadBalancerName: p.name,
    DNSName: dns,
    CanonicalHostedZoneName: dns,
    CanonicalHostedZoneNameID: 'Z35SXDOTRQ7X7K',
    ListenerDescriptions: {
      member: p.listeners.map((l) => ({
        Listener: {Protocol: l.protocol, LoadBalancerPort: l.loadBalancerPort, InstanceProtocol: l.instanceProtocol, InstancePort: l.instancePort},
        PolicyNames: '',
      })),
    },
    Policies: {AppCookieStickinessPolicies: '', LBCookieStickinessPolicies: '', OtherPolicies: ''},
    BackendServerDescriptions: '',
    AvailabilityZones: {member: p.availabilityZones},
    Subnets: '',
    Instances: {member: p.members.map((m) => ({InstanceId: m.id}))},
    HealthCheck: healthCheckXml(p.healthCheck),
    SourceSecurityGroup: {OwnerAlias: 'amazon-elb', GroupName: 'amazon-elb-sg'},
    SecurityGroups: '',
    CreatedTime: p.createdAt,
    Scheme: p.scheme,
  }
}

export function targetText(c: HealthCheck): string {
  return `${c.protocol}:${c.port}${c.protocol === 'HTTP' || c.protocol === 'HTTPS' ? (c.path ?? '/') : ''}`
}

function healthCheckXml(c: HealthCheck): XmlObject {
  return {Target: targetText(c), Interval: c.intervalSeconds, Timeout: c.timeoutSeconds, UnhealthyThreshold: c.unhealthyThreshold, HealthyThreshold: c.healthyThreshold}
}

/** HealthCheck.Target/Interval/Timeout/UnhealthyThreshold/HealthyThreshold, with AWS's limits. */
export function parseHealthCheck(params: QueryParams): HealthCheck {
  const need = (key: string) => {
    const v = params.get(`HealthCheck.${key}`)
    if (v === undefined || v === '') throw validationError(`1 validation error detected: Value null at 'healthCheck.${key.charAt(0).toLowerCase()}${key.slice(1)}' failed to satisfy constraint: Member must not be null`)
    return v
  }
  const target = need('Target')
  const m = /^(TCP|SSL|HTTP|HTTPS):([0-9]{1,5})(\/.*)?$/i.exec(target)
  const protocol = m?.[1]?.toUpperCase() as HealthCheck['protocol'] | undefined
  const port = Number(m?.[2])
  const web = protocol === 'HTTP' || protocol === 'HTTPS'
  if (!m || !protocol || !isPort(port) || (web && !m[3]) || (!web && m[3])) {
    throw validationError(`Target '${target}' is invalid: use TCP:port, SSL:port, HTTP:port/path or HTTPS:port/path.`)
  }
  const int = (key: string, lo: number, hi: number) => {
    const text = need(key)
    const n = Number(text)
    if (!/^[0-9]+$/.test(text) || n < lo || n > hi) throw validationError(`HealthCheck.${key} must be between ${lo} and ${hi} (got ${text}).`)
    return n
  }
  const check: HealthCheck = {
    protocol,
    port,
    ...(web ? {path: m[3]!} : {}),
    intervalSeconds: int('Interval', 5, 300),
    timeoutSeconds: int('Timeout', 2, 60),
    healthyThreshold: int('HealthyThreshold', 2, 10),
    unhealthyThreshold: int('UnhealthyThreshold', 2, 10),
  }
  if (check.timeoutSeconds >= check.intervalSeconds) throw validationError('HealthCheck.Timeout must be smaller than HealthCheck.Interval.')
  return check
}

/** The check becomes HAProxy's: inter, timeout check, rise, fall (a reload, as `timeout check` is the backend's). */
export async function configureHealthCheck(req: CloudRequest): Promise<XmlObject> {
  const name = requiredParam(req, 'LoadBalancerName')
  const check = parseHealthCheck(req.params)
  return changeLbState(req.dir, async (state) => {
    const pool = findClassic(state, name)
    pool.healthCheck = check
    await reloadDataPlane(req, state)
    return {HealthCheck: healthCheckXml(check)}
  })
}

export async function describeLoadBalancerAttributes(req: CloudRequest): Promise<XmlObject> {
  const pool = findClassic(await readLbState(req.dir), requiredParam(req, 'LoadBalancerName'))
  return {LoadBalancerAttributes: attributesXml(pool)}
}

export async function modifyLoadBalancerAttributes(req: CloudRequest): Promise<XmlObject> {
  const name = requiredParam(req, 'LoadBalancerName')
  const p = req.params
  const get = (k: string) => p.get(`LoadBalancerAttributes.${k}`)
  const bool = (k: string) => {
    const v = get(k)
    if (v === undefined) return undefined
    if (!/^(true|false)$/i.test(v)) throw validationError(`LoadBalancerAttributes.${k} must be true or false (got ${v}).`)
    return v.toLowerCase() === 'true'
  }
  const int = (k: string, lo: number, hi: number) => {
    const v = get(k)
    if (v === undefined) return undefined
    if (!/^[0-9]+$/.test(v) || Number(v) < lo || Number(v) > hi) throw validationError(`LoadBalancerAttributes.${k} must be between ${lo} and ${hi} (got ${v}).`)
    return Number(v)
  }
  const draining = {enabled: bool('ConnectionDraining.Enabled'), timeout: int('ConnectionDraining.Timeout', 1, 3600)}
  const idle = int('ConnectionSettings.IdleTimeout', 1, 4000)
  const crossZone = bool('CrossZoneLoadBalancing.Enabled')
  const accessLog = bool('AccessLog.Enabled')
  if ([draining.enabled, draining.timeout, idle, crossZone, accessLog].every((v) => v === undefined)) {
    throw validationError('At least one load balancer attribute must be specified.')
  }
  if (accessLog && !get('AccessLog.S3BucketName')) throw new CloudApiError('InvalidConfigurationRequest', 'AccessLog.S3BucketName is required when access logs are enabled.', 409)
  return changeLbState(req.dir, (state) => {
    const pool = findClassic(state, name)
    const a = pool.attributes
    if (draining.enabled !== undefined) a.connectionDraining.enabled = draining.enabled
    if (draining.timeout !== undefined) a.connectionDraining.timeout = draining.timeout
    if (idle !== undefined) a.connectionSettings.idleTimeout = idle
    if (crossZone !== undefined) a.crossZoneLoadBalancing.enabled = crossZone
    if (accessLog !== undefined) a.accessLog = {enabled: accessLog, ...(accessLog ? {s3BucketName: get('AccessLog.S3BucketName'), emitInterval: Number(get('AccessLog.EmitInterval') ?? 60), s3BucketPrefix: get('AccessLog.S3BucketPrefix') ?? ''} : {})}
    return {LoadBalancerName: name, LoadBalancerAttributes: attributesXml(pool)}
  })
}

function attributesXml(p: ClassicPool): XmlObject {
  const a = p.attributes
  return {
    CrossZoneLoadBalancing: {Enabled: a.crossZoneLoadBalancing.enabled},
    AccessLog: {Enabled: a.accessLog.enabled, S3BucketName: a.accessLog.s3BucketName, EmitInterval: a.accessLog.emitInterval, S3BucketPrefix: a.accessLog.s3BucketPrefix},
    ConnectionDraining: {Enabled: a.connectionDraining.enabled, Timeout: a.connectionDraining.timeout},
    ConnectionSettings: {IdleTimeout: a.connectionSettings.idleTimeout},
    AdditionalAttributes: '',
  }
}
