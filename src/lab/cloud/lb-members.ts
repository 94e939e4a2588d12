import type {CloudFile, CloudInstance} from './cloud-file.js'
import {CloudApiError} from './errors.js'
import {addMember, dataPlaneOf, reloadPlane, removeMember, startDrain} from './lb-plane.js'
import {drainSeconds, type LbState, type Pool, type PoolMember} from './lb-state.js'
import type {CloudRequest} from './service.js'

/**
 * Registering and deregistering members, the same for a Classic load balancer and a target group:
 * lb.json changes under its lock, then HAProxy follows. A data plane that does not answer leaves
 * the control plane changed (as AWS's API does when a node is unreachable): HAProxy's next start
 * renders the members from lb.json, and the health the APIs report says Unknown meanwhile.
 */

export function validationError(message: string): CloudApiError {
  return new CloudApiError('ValidationError', message)
}

export function requiredParam(req: CloudRequest, name: string): string {
  const value = req.params.get(name)
  if (value === undefined || value === '') throw validationError(`1 validation error detected: Value null at '${lowerFirst(name)}' failed to satisfy constraint: Member must not be null`)
  return value
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1)
}

export function ec2Instance(cloud: CloudFile, id: string): CloudInstance | undefined {
  return cloud.ec2.instances.find((i) => i.instanceId === id)
}

export async function registerMembers(req: CloudRequest, pool: Pool, members: {id: string; port: number}[]): Promise<void> {
  const plane = dataPlaneOf(req.cloud)
  for (const {id, port} of members) {
    const key = (m: PoolMember) => m.id === id && m.port === port
    if (pool.members.some(key)) continue
    const draining = pool.draining.find(key)
    const member: PoolMember = draining ? {id, port, registeredAt: draining.registeredAt} : {id, port, registeredAt: new Date().toISOString()}
    pool.draining = pool.draining.filter((m) => !key(m))
    pool.members.push(member)
    const address = ec2Instance(req.cloud, id)?.privateIp
    if (plane && address) await dataPlane(`register ${id}`, () => addMember(plane, pool, member, address, draining !== undefined))
  }
}

/** Members leave at once; each drains for the pool's draining timeout (0: removed now). */
export async function deregisterMembers(req: CloudRequest, pool: Pool, members: {id: string; port: number}[]): Promise<void> {
  const plane = dataPlaneOf(req.cloud)
  const seconds = drainSeconds(pool)
  for (const {id, port} of members) {
    const member = pool.members.find((m) => m.id === id && m.port === port)
    if (!member) continue
    pool.members = pool.members.filter((m) => m !== member)
    if (seconds > 0) {
      const now = Date.now()
      pool.draining.push({...member, since: new Date(now).toISOString(), until: new Date(now + seconds * 1000).toISOString()})
      if (plane) await dataPlane(`drain ${id}`, () => startDrain(plane, pool, member))
    } else if (plane) {
      await dataPlane(`deregister ${id}`, () => removeMember(plane, pool, member))
    }
  }
}

/** HAProxy reloaded from the changed state (a new backend, a new health check). */
export async function reloadDataPlane(req: CloudRequest, state: LbState): Promise<void> {
  const plane = dataPlaneOf(req.cloud)
  if (plane) await dataPlane('reload', () => reloadPlane(plane, req.cloud, state))
}

async function dataPlane(what: string, run: () => Promise<void>): Promise<void> {
  try {
    await run()
  } catch (err) {
    process.stderr.write(`${new Date().toISOString()} data plane: ${what}: ${(err as Error).message}\n`)
  }
}

/** A marker/page token that only fits the listing it came from. */
export function pageOf<T>(items: T[], marker: string | undefined, pageSize: number, query: string): {page: T[]; next?: string} {
  let offset = 0
  if (marker) {
    let d: {o?: unknown; q?: unknown} | undefined
    try {
      d = JSON.parse(Buffer.from(marker, 'base64url').toString('utf8')) as typeof d
    } catch {
      d = undefined
    }
    if (!d || d.q !== query || !Number.isSafeInteger(d.o) || (d.o as number) < 0) throw validationError(`Invalid Marker: ${marker.slice(0, 64)}`)
    offset = d.o as number
  }
  const page = items.slice(offset, offset + pageSize)
  const more = offset + page.length < items.length
  return {page, next: more ? Buffer.from(JSON.stringify({o: offset + page.length, q: query})).toString('base64url') : undefined}
}
