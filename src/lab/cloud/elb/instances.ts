import type {CloudFile} from '../cloud-file.js'
import {CloudApiError} from '../errors.js'
import {deregisterMembers, ec2Instance, registerMembers, requiredParam, validationError} from '../lb-members.js'
import {dataPlaneOf, healthOfMember, planeStates, type MemberHealth} from '../lb-plane.js'
import {changeLbState, readLbState, type ClassicPool} from '../lb-state.js'
import {indexedStructs} from '../query-params.js'
import type {CloudRequest} from '../service.js'
import type {XmlObject} from '../xml.js'
import {findClassic} from './load-balancers.js'

/** Classic ELB: registering instances and their health, as HAProxy sees it. */

function instanceIds(req: CloudRequest, required: boolean): string[] {
  const ids = indexedStructs(req.params, 'Instances.member').map((s) => s.get('InstanceId') ?? '')
  if (required && ids.length === 0) throw validationError("1 validation error detected: Value null at 'instances' failed to satisfy constraint: Member must not be null")
  if (ids.some((id) => id === '')) throw validationError('Instances.member.N.InstanceId must not be empty.')
  return [...new Set(ids)]
}

/** Every id must be an EC2 instance (or, to deregister, a member whose instance is gone); registering also needs it running. */
function checkInstances(cloud: CloudFile, ids: string[], registering: boolean, pool?: ClassicPool): void {
  const known = (id: string) => pool !== undefined && [...pool.members, ...pool.draining].some((m) => m.id === id)
  const missing = ids.filter((id) => (ec2Instance(cloud, id) === undefined || ec2Instance(cloud, id)?.state === 'terminated') && !known(id))
  if (missing.length > 0) throw new CloudApiError('InvalidInstance', `Could not find EC2 instance${missing.length > 1 ? 's' : ''} ${missing.join(', ')}.`)
  const notRunning = registering ? ids.filter((id) => ec2Instance(cloud, id)?.state !== 'running') : []
  if (notRunning.length > 0) throw new CloudApiError('InvalidInstance', `EC2 instance ${notRunning.join(', ')} is not in running state.`)
}

function instancesXml(pool: ClassicPool): XmlObject {
  return {Instances: {member: pool.members.map((m) => ({InstanceId: m.id}))}}
}

export async function registerInstances(req: CloudRequest): Promise<XmlObject> {
  const name = requiredParam(req, 'LoadBalancerName')
  const ids = instanceIds(req, true)
  return changeLbState(req.dir, async (state) => {
    const pool = findClassic(state, name)
    checkInstances(req.cloud, ids, true)
    const port = pool.listeners[0]!.instancePort
    await registerMembers(req, pool, ids.map((id) => ({id, port})))
    return instancesXml(pool)
  })
}

export async function deregisterInstances(req: CloudRequest): Promise<XmlObject> {
  const name = requiredParam(req, 'LoadBalancerName')
  const ids = instanceIds(req, true)
  return changeLbState(req.dir, async (state) => {
    const pool = findClassic(state, name)
    checkInstances(req.cloud, ids, false, pool)
    const port = pool.listeners[0]!.instancePort
    await deregisterMembers(req, pool, ids.map((id) => ({id, port})))
    return instancesXml(pool)
  })
}

export interface InstanceHealth {
  InstanceId: string
  State: 'InService' | 'OutOfService' | 'Unknown'
  ReasonCode: 'ELB' | 'Instance' | 'N/A'
  Description: string
}

const transient: Omit<InstanceHealth, 'InstanceId'> = {State: 'Unknown', ReasonCode: 'ELB', Description: 'A transient error occurred. Please try again later.'}

/**
 * Every registered instance (or the ones asked for, registered or not), from HAProxy's server
 * states: UP is InService; down is OutOfService with the reason AWS gives; a member still draining
 * is InService "deregistration currently in progress" until HAProxy has put it in maintenance.
 */
export async function describeInstanceHealth(req: CloudRequest): Promise<XmlObject> {
  const name = requiredParam(req, 'LoadBalancerName')
  const asked = instanceIds(req, false)
  const pool = findClassic(await readLbState(req.dir), name)
  if (asked.length > 0) checkInstances(req.cloud, asked, false)
  const ids = asked.length > 0 ? asked : pool.members.map((m) => m.id)
  const plane = dataPlaneOf(req.cloud)
  const states = await planeStates(plane)
  const out: InstanceHealth[] = []
  for (const id of ids) {
    const ec2 = ec2Instance(req.cloud, id)
    if (!ec2 || ec2.state === 'terminated') continue // AWS leaves terminated instances out
    const member = pool.members.find((m) => m.id === id)
    const draining = pool.draining.find((m) => m.id === id)
    const state = (s: Omit<InstanceHealth, 'InstanceId'>) => out.push({InstanceId: id, ...s})
    if (ec2.state === 'pending') state({State: 'OutOfService', ReasonCode: 'Instance', Description: 'Instance is in pending state.'})
    else if (ec2.state !== 'running') state({State: 'OutOfService', ReasonCode: 'Instance', Description: 'Instance is in stopped state.'})
    else if (draining && !member) state({State: 'InService', ReasonCode: 'ELB', Description: 'Instance deregistration currently in progress.'})
    else if (!member) state({State: 'OutOfService', ReasonCode: 'ELB', Description: 'Instance is not currently registered with the LoadBalancer.'})
    else if (!plane) state({State: 'InService', ReasonCode: 'N/A', Description: 'N/A'}) // no data plane: nothing to check with
    else {
      const health = healthOfMember(states, pool, member)
      if (health.kind === 'healthy') state({State: 'InService', ReasonCode: 'N/A', Description: 'N/A'})
      else if (health.kind === 'registering') state({State: 'OutOfService', ReasonCode: 'ELB', Description: 'Instance registration is still in progress.'})
      else if (health.kind === 'recovering') state({State: 'OutOfService', ReasonCode: 'Instance', Description: 'Instance has not passed the configured HealthyThreshold number of health checks consecutively.'})
      else if (health.kind === 'failing') state({State: 'OutOfService', ReasonCode: 'Instance', Description: 'Instance has failed at least the UnhealthyThreshold number of health checks consecutively.'})
      else state(transient)
    }
  }
  return {InstanceStates: {member: out.map((s) => ({...s}))}}
}
