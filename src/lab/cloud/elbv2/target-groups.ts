import {createHash} from 'node:crypto'

import {CloudApiError} from '../errors.js'
import {dataPlaneOf} from '../lb-plane.js'
import {pageOf, reloadDataPlane, requiredParam, validationError} from '../lb-members.js'
import {changeLbState, readLbState, type HealthCheck, type LbState, type TargetGroupPool} from '../lb-state.js'
import {indexedStructs, indexedValues, integerParam} from '../query-params.js'
import type {CloudRequest} from '../service.js'
import type {CloudFile} from '../cloud-file.js'
import type {XmlObject} from '../xml.js'

/** ELBv2 target groups: create, describe, attributes. */

const account = '000000000000'

function suffix(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16)
}

export function targetGroupArn(region: string, name: string): string {
  return `arn:aws:elasticloadbalancing:${region}:${account}:targetgroup/${name}/${suffix(`tg/${name}`)}`
}

/** The load balancer whose listener forwards to a target group with a front in the lab (127.N.0.1:8001): an NLB for TCP. */
export function frontLoadBalancerArn(region: string, pool: Pick<TargetGroupPool, 'name' | 'protocol'>): string {
  const type = pool.protocol === 'TCP' || pool.protocol === 'TLS' ? 'net' : 'app'
  return `arn:aws:elasticloadbalancing:${region}:${account}:loadbalancer/${type}/${pool.name}-lb/${suffix(`lb/${pool.name}`)}`
}

export function findTargetGroup(state: LbState, arn: string): TargetGroupPool {
  const pool = state.pools.find((p): p is TargetGroupPool => p.kind === 'targetgroup' && p.arn === arn)
  if (!pool) throw new CloudApiError('TargetGroupNotFound', 'One or more target groups not found')
  return pool
}

/** A target group receives traffic only through a load balancer: the lab's has one when it has a front. */
export function loadBalancerArns(cloud: CloudFile, pool: TargetGroupPool): string[] {
  const front = dataPlaneOf(cloud)?.fronts.some((f) => f.pool === `targetgroup/${pool.name}`)
  const region = pool.arn.split(':')[3] ?? 'us-east-1'
  return [...new Set([...pool.loadBalancerArns, ...(front ? [frontLoadBalancerArn(region, pool)] : [])])]
}

const defaultAttributes: Record<string, string> = {
  'deregistration_delay.timeout_seconds': '300',
  'stickiness.enabled': 'false',
  'stickiness.type': 'lb_cookie',
  'stickiness.lb_cookie.duration_seconds': '86400',
  'load_balancing.algorithm.type': 'round_robin',
  'slow_start.duration_seconds': '0',
}

export async function createTargetGroup(req: CloudRequest): Promise<XmlObject> {
  const p = req.params
  const name = requiredParam(req, 'Name')
  if (!/^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?$/.test(name)) {
    throw validationError(`Target group name '${name}' can have a maximum of 32 characters, contain only alphanumeric characters or hyphens, and must not begin or end with a hyphen`)
  }
  const protocol = (p.get('Protocol') ?? 'HTTP').toUpperCase()
  if (!['HTTP', 'HTTPS', 'TCP', 'TLS'].includes(protocol)) throw validationError(`The lab's target groups take HTTP, HTTPS, TCP or TLS (got ${protocol}).`)
  const port = integerParam(p, 'Port')
  if (port === undefined || port < 1 || port > 65535) throw validationError('A port between 1 and 65535 must be specified')
  if ((p.get('TargetType') ?? 'instance') !== 'instance') throw validationError("The lab's target groups take instance targets only.")
  const web = protocol === 'HTTP' || protocol === 'HTTPS'
  const hcProtocol = (p.get('HealthCheckProtocol') ?? (web ? protocol : 'TCP')).toUpperCase() as HealthCheck['protocol'] | 'TLS'
  const hcPort = p.get('HealthCheckPort') ?? 'traffic-port'
  if (hcPort !== 'traffic-port' && !/^[0-9]{1,5}$/.test(hcPort)) throw validationError(`Health check port '${hcPort}' must be 'traffic-port' or a port number`)
  const int = (key: string, dflt: number, lo: number, hi: number) => {
    const v = integerParam(p, key) ?? dflt
    if (v < lo || v > hi) throw validationError(`${key} must be between ${lo} and ${hi} (got ${v})`)
    return v
  }
  const hcWeb = hcProtocol === 'HTTP' || hcProtocol === 'HTTPS'
  const check: HealthCheck = {
    protocol: hcProtocol === 'TLS' ? 'SSL' : hcProtocol,
    port: hcPort === 'traffic-port' ? port : Number(hcPort),
    ...(hcWeb ? {path: p.get('HealthCheckPath') ?? '/'} : {}),
    intervalSeconds: int('HealthCheckIntervalSeconds', 30, 5, 300),
    timeoutSeconds: int('HealthCheckTimeoutSeconds', hcWeb ? 5 : 10, 2, 120),
    healthyThreshold: int('HealthyThresholdCount', 5, 2, 10),
    unhealthyThreshold: int('UnhealthyThresholdCount', 2, 2, 10),
  }
  if (check.timeoutSeconds >= check.intervalSeconds) throw validationError('Health check timeout must be smaller than the interval')
  const matcher = p.get('Matcher.HttpCode') ?? '200'
  if (!/^[0-9]{3}(-[0-9]{3})?(,[0-9]{3}(-[0-9]{3})?)*$/.test(matcher)) throw validationError(`Matcher '${matcher}' is invalid`)
  const vpcId = p.get('VpcId') ?? 'vpc-0lab00000000000'
  return changeLbState(req.dir, async (state) => {
    const existing = state.pools.find((x): x is TargetGroupPool => x.kind === 'targetgroup' && x.name === name)
    if (existing) {
      if (existing.protocol !== protocol || existing.port !== port || JSON.stringify(existing.healthCheck) !== JSON.stringify(check)) {
        throw new CloudApiError('DuplicateTargetGroupName', `A target group with the same name '${name}' exists, but with different settings`)
      }
      return {TargetGroups: {member: [describe(req.cloud, existing)]}}
    }
    const pool: TargetGroupPool = {
      kind: 'targetgroup',
      name,
      arn: targetGroupArn(req.region, name),
      createdAt: new Date().toISOString(),
      protocol,
      port,
      vpcId,
      healthCheck: check,
      healthCheckPort: hcPort,
      matcher,
      loadBalancerArns: [],
      attributes: {...defaultAttributes},
      members: [],
      draining: [],
    }
    state.pools.push(pool)
    await reloadDataPlane(req, state)
    return {TargetGroups: {member: [describe(req.cloud, pool)]}}
  })
}

export async function describeTargetGroups(req: CloudRequest): Promise<XmlObject> {
  const arns = indexedValues(req.params, 'TargetGroupArns.member')
  const names = indexedValues(req.params, 'Names.member')
  const lbArn = req.params.get('LoadBalancerArn')
  if ([arns.length > 0, names.length > 0, lbArn !== undefined].filter(Boolean).length > 1) {
    throw validationError('Only one of TargetGroupArns, Names or LoadBalancerArn can be specified')
  }
  const pageSize = integerParam(req.params, 'PageSize') ?? 400
  if (pageSize < 1 || pageSize > 400) throw validationError('PageSize must be between 1 and 400')
  const state = await readLbState(req.dir)
  const all = state.pools.filter((p): p is TargetGroupPool => p.kind === 'targetgroup')
  let groups = all
  if (arns.length > 0) groups = arns.map((a) => findTargetGroup(state, a))
  if (names.length > 0) {
    groups = names.map((n) => {
      const g = all.find((x) => x.name === n)
      if (!g) throw new CloudApiError('TargetGroupNotFound', `Target groups '[${n}]' not found`)
      return g
    })
  }
  if (lbArn !== undefined) groups = all.filter((g) => loadBalancerArns(req.cloud, g).includes(lbArn))
  const {page, next} = pageOf(groups, req.params.get('Marker'), pageSize, [...arns, ...names, lbArn ?? ''].join(','))
  return {TargetGroups: {member: page.map((g) => describe(req.cloud, g))}, NextMarker: next}
}

function describe(cloud: CloudFile, g: TargetGroupPool): XmlObject {
  const c = g.healthCheck
  const web = c.protocol === 'HTTP' || c.protocol === 'HTTPS'
  return {
    TargetGroupArn: g.arn,
    TargetGroupName: g.name,
    Protocol: g.protocol,
    Port: g.port,
    VpcId: g.vpcId,
    HealthCheckProtocol: c.protocol === 'SSL' ? 'TLS' : c.protocol,
    HealthCheckPort: g.healthCheckPort,
    HealthCheckEnabled: true,
    HealthCheckIntervalSeconds: c.intervalSeconds,
    HealthCheckTimeoutSeconds: c.timeoutSeconds,
    HealthyThresholdCount: c.healthyThreshold,
    UnhealthyThresholdCount: c.unhealthyThreshold,
    HealthCheckPath: web ? c.path : undefined,
    Matcher: web ? {HttpCode: g.matcher} : undefined,
    LoadBalancerArns: {member: loadBalancerArns(cloud, g)},
    TargetType: 'instance',
    ProtocolVersion: web ? 'HTTP1' : undefined,
    IpAddressType: 'ipv4',
  }
}

export async function describeTargetGroupAttributes(req: CloudRequest): Promise<XmlObject> {
  const g = findTargetGroup(await readLbState(req.dir), requiredParam(req, 'TargetGroupArn'))
  return attributesXml(g)
}

export async function modifyTargetGroupAttributes(req: CloudRequest): Promise<XmlObject> {
  const arn = requiredParam(req, 'TargetGroupArn')
  const changes = indexedStructs(req.params, 'Attributes.member').map((s) => ({key: s.get('Key') ?? '', value: s.get('Value') ?? ''}))
  if (changes.length === 0) throw validationError("1 validation error detected: Value null at 'attributes' failed to satisfy constraint: Member must not be null")
  for (const {key, value} of changes) {
    if (!Object.hasOwn(defaultAttributes, key)) throw new CloudApiError('InvalidConfigurationRequest', `Target group attribute key '${key}' is not recognized`)
    if (key.endsWith('_seconds') && (!/^[0-9]+$/.test(value) || Number(value) > (key.startsWith('deregistration') ? 3600 : 604800))) {
      throw validationError(`Target group attribute '${key}' has an invalid value '${value}'`)
    }
    if (key === 'stickiness.enabled' && !/^(true|false)$/.test(value)) throw validationError(`Target group attribute '${key}' must be true or false`)
  }
  return changeLbState(req.dir, (state) => {
    const g = findTargetGroup(state, arn)
    for (const {key, value} of changes) g.attributes[key] = value
    return attributesXml(g)
  })
}

function attributesXml(g: TargetGroupPool): XmlObject {
  return {Attributes: {member: Object.entries(g.attributes).map(([Key, Value]) => ({Key, Value}))}}
}
