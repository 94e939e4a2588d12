import {CloudApiError} from '../errors.js'
import {deregisterMembers, ec2Instance, registerMembers, requiredParam, validationError} from '../lb-members.js'
import {dataPlaneOf, healthOfMember, planeStates, type MemberHealth} from '../lb-plane.js'
import {changeLbState, readLbState, type TargetGroupPool} from '../lb-state.js'
import {indexedStructs} from '../query-params.js'
import type {CloudRequest} from '../service.js'
import type {XmlObject} from '../xml.js'
import {findTargetGroup, loadBalancerArns} from './target-groups.js'

/** ELBv2 targets: register, deregister (drained for deregistration_delay), and their health from HAProxy. */

function targets(req: CloudRequest, pool: TargetGroupPool, required: boolean): {id: string; port: number}[] {
  const list = indexedStructs(req.params, 'Targets.member').map((s) => {
    const id = s.get('Id') ?? ''
    const portText = s.get('Port')
    const port = portText === undefined ? pool.port : Number(portText)
    if (!id) throw validationError('Targets.member.N.Id must not be empty')
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw validationError(`Port '${portText}' of target '${id}' must be between 1 and 65535`)
    return {id, port}
  })
  if (required && list.length === 0) throw validationError("1 validation error detected: Value null at 'targets' failed to satisfy constraint: Member must not be null")
  return list.filter((t, i) => list.findIndex((u) => u.id === t.id && u.port === t.port) === i)
}

/** Every target must be an EC2 instance (or, to deregister, a member whose instance is gone); registering also needs it running. */
function checkTargets(req: CloudRequest, list: {id: string}[], registering: boolean, pool?: TargetGroupPool): void {
  const known = (id: string) => pool !== undefined && [...pool.members, ...pool.draining].some((m) => m.id === id)
  const invalid = list.filter((t) => (!ec2Instance(req.cloud, t.id) || ec2Instance(req.cloud, t.id)?.state === 'terminated') && !known(t.id))
  if (invalid.length > 0) throw new CloudApiError('InvalidTarget', `The following targets are not valid instances: ${invalid.map((t) => `'${t.id}'`).join(', ')}`)
  const stopped = registering ? list.filter((t) => ec2Instance(req.cloud, t.id)?.state !== 'running') : []
  if (stopped.length > 0) {
    throw new CloudApiError('InvalidTarget', `The following targets are not in a running state and cannot be registered: ${stopped.map((t) => `'${t.id}'`).join(', ')}`)
  }
}

export async function registerTargets(req: CloudRequest): Promise<XmlObject | undefined> {
  const arn = requiredParam(req, 'TargetGroupArn')
  await changeLbState(req.dir, async (state) => {
    const pool = findTargetGroup(state, arn)
    const list = targets(req, pool, true)
    checkTargets(req, list, true)
    await registerMembers(req, pool, list)
  })
  return undefined
}

export async function deregisterTargets(req: CloudRequest): Promise<XmlObject | undefined> {
  const arn = requiredParam(req, 'TargetGroupArn')
  await changeLbState(req.dir, async (state) => {
    const pool = findTargetGroup(state, arn)
    const list = targets(req, pool, true)
    checkTargets(req, list, false, pool)
    await deregisterMembers(req, pool, list)
  })
  return undefined
}

type Health = {State: string; Reason?: string; Description?: string}

export async function describeTargetHealth(req: CloudRequest): Promise<XmlObject> {
  const pool = findTargetGroup(await readLbState(req.dir), requiredParam(req, 'TargetGroupArn'))
  const asked = targets(req, pool, false)
  if (asked.length > 0) checkTargets(req, asked, false)
  const list = asked.length > 0 ? asked : [...pool.members, ...pool.draining].map((m) => ({id: m.id, port: m.port}))
  const plane = dataPlaneOf(req.cloud)
  const states = await planeStates(plane)
  const inUse = loadBalancerArns(req.cloud, pool).length > 0
  const out = list.map(({id, port}) => {
    const ec2 = ec2Instance(req.cloud, id)
    const member = pool.members.find((m) => m.id === id && m.port === port)
    const draining = pool.draining.find((m) => m.id === id && m.port === port)
    let health: Health
    if (ec2 && ec2.state !== 'running' && ec2.state !== 'pending') {
      health = {State: 'unused', Reason: 'Target.InvalidState', Description: `Target is in the ${ec2.state === 'terminated' ? 'terminated' : 'stopped'} state`}
    } else if (draining && !member) health = {State: 'draining', Reason: 'Target.DeregistrationInProgress', Description: 'Target deregistration is in progress'}
    else if (!member) health = {State: 'unused', Reason: 'Target.NotRegistered', Description: 'Target is not registered to the target group'}
    else if (!inUse) health = {State: 'unused', Reason: 'Target.NotInUse', Description: 'Target group is not configured to receive traffic from the load balancer'}
    else if (!plane) health = {State: 'healthy'}
    else health = fromHaproxy(healthOfMember(states, pool, member))
    const checkPort = pool.healthCheckPort === 'traffic-port' ? port : Number(pool.healthCheckPort)
    return {Target: {Id: id, Port: port}, HealthCheckPort: String(checkPort), TargetHealth: health}
  })
  return {TargetHealthDescriptions: {member: out as unknown as XmlObject[]}}
}

function fromHaproxy(h: MemberHealth): Health {
  switch (h.kind) {
    case 'healthy':
      return {State: 'healthy'}
    case 'registering':
      return {State: 'initial', Reason: 'Elb.RegistrationInProgress', Description: 'Target registration is in progress'}
    case 'recovering':
      return {State: 'unhealthy', Reason: 'Target.FailedHealthChecks', Description: 'Health checks failed'}
    case 'failing':
      if (h.httpCode !== undefined) return {State: 'unhealthy', Reason: 'Target.ResponseCodeMismatch', Description: `Health checks failed with these codes: [${h.httpCode}]`}
      if (h.timeout) return {State: 'unhealthy', Reason: 'Target.Timeout', Description: 'Request timed out'}
      return {State: 'unhealthy', Reason: 'Target.FailedHealthChecks', Description: 'Health checks failed'}
    default:
      return {State: 'unavailable', Reason: 'Elb.InternalError', Description: 'Health checks failed due to an internal error'}
  }
}
