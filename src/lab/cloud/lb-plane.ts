import {existsSync, readFileSync} from 'node:fs'
import {writeFile, rename} from 'node:fs/promises'

import {configNode, renderHaproxyConfig, serverCheckArgs, type Front, type HaproxyFiles} from '../haproxy/config.js'
import {runtimeAction, runtimeCommand, serverStates, serversStateDump, workerInfo, AdminFlag, OpState, type ServerState} from '../haproxy/runtime.js'
import type {CloudFile} from './cloud-file.js'
import {backendName, changeLbState, readLbState, serverName, type HealthCheck, type LbState, type Pool, type PoolMember} from './lb-state.js'

/**
 * The lab ELB's data plane: what a registration, a deregistration or a new health check does to
 * HAProxy, through its runtime API. Without an `lb.haproxy` section in cloud.json (a lab without
 * NGINX nodes, or a test endpoint) the APIs still keep their state; nothing forwards traffic.
 */

export interface DataPlane {
  haproxy: HaproxyFiles
  fronts: Front[]
}

export function dataPlaneOf(cloud: CloudFile): DataPlane | undefined {
  return cloud.lb ? {haproxy: cloud.lb.haproxy, fronts: cloud.lb.fronts} : undefined
}

/** Instance id → private address, for the servers HAProxy forwards to. */
export function instanceAddresses(cloud: CloudFile): Map<string, string> {
  return new Map(cloud.ec2.instances.map((i) => [i.instanceId, i.privateIp]))
}

/**
 * A new member: the server is added (HAProxy adds it in maintenance), made ready, forced down and
 * its checks started, so it takes traffic only once it has passed HealthyThreshold checks in a row,
 * as an instance registered with an ELB does. A member still draining is simply made ready again.
 */
export async function addMember(plane: DataPlane, pool: Pool, member: PoolMember, address: string, wasDraining: boolean): Promise<void> {
  const srv = `${backendName(pool)}/${serverName(pool, member)}`
  if (wasDraining) {
    await runtimeAction(plane.haproxy.socket, [`set server ${srv} state ready`])
    return
  }
  const added = (await runtimeCommand(plane.haproxy.socket, [`add server ${srv} ${address}:${member.port} ${serverCheckArgs(pool, member).join(' ')}`])).trim()
  if (added !== 'New server registered.' && !/already exists/i.test(added)) throw new Error(`HAProxy refused to add ${srv}: ${added}`)
  await runtimeAction(plane.haproxy.socket, [`set server ${srv} state ready`, `set server ${srv} health down`, `enable health ${srv}`])
}

/** Starts a member's draining: HAProxy stops sending it new requests, the ones it serves go on. */
export async function startDrain(plane: DataPlane, pool: Pool, member: PoolMember): Promise<void> {
  await runtimeAction(plane.haproxy.socket, [`set server ${backendName(pool)}/${serverName(pool, member)} state drain`])
}

/** Ends a member: maintenance, what still runs on it cut, then the server removed (or left in maintenance if HAProxy refuses). */
export async function removeMember(plane: DataPlane, pool: Pool, member: PoolMember): Promise<void> {
  const srv = `${backendName(pool)}/${serverName(pool, member)}`
  await runtimeAction(plane.haproxy.socket, [`set server ${srv} state maint`, `shutdown sessions server ${srv}`])
  // Idle kept-alive connections can hold a delete back for a moment; a server left in maintenance takes no traffic.
  await runtimeCommand(plane.haproxy.socket, [`del server ${srv}`]).catch(() => undefined)
}

/** Every server's state, or undefined when HAProxy does not answer. */
export async function planeStates(plane: DataPlane | undefined): Promise<Map<string, ServerState> | undefined> {
  if (!plane) return undefined
  return serverStates(plane.haproxy.socket).catch(() => undefined)
}

export function memberState(states: Map<string, ServerState> | undefined, pool: Pool, member: PoolMember): ServerState | undefined {
  return states?.get(`${backendName(pool)}/${serverName(pool, member)}`)
}

/** A member's health from the data plane's states, its registration time and the pool's check. */
export function healthOfMember(states: Map<string, ServerState> | undefined, pool: Pool, member: PoolMember, now = Date.now()): MemberHealth {
  return memberHealth(memberState(states, pool, member), {sinceRegisteredMs: now - Date.parse(member.registeredAt), check: pool.healthCheck})
}

/** What a member's HAProxy state means, in the terms both ELB APIs report. */
export type MemberHealth =
  | {kind: 'healthy'}
  | {kind: 'registering'}
  | {kind: 'recovering'}
  | {kind: 'failing'; timeout: boolean; httpCode?: number}
  | {kind: 'unknown'}

/**
 * `sinceRegisteredMs` and `check`: a member that has never been up is still "registering" until it
 * has had UnhealthyThreshold checks to fail, as AWS reports a new instance whose checks fail.
 */
export function memberHealth(state: ServerState | undefined, registration?: {sinceRegisteredMs: number; check: HealthCheck}): MemberHealth {
  if (!state) return {kind: 'unknown'}
  if (state.adminState & (AdminFlag.forcedMaint | AdminFlag.inheritedMaint | AdminFlag.configMaint | AdminFlag.resolutionMaint)) {
    return {kind: 'unknown'}
  }
  if (state.opState === OpState.running || state.opState === OpState.starting) return {kind: 'healthy'}
  const passed = /^(L4OK|L6OK|L7OK|L7OKC)$/.test(state.checkStatus)
  // A new server is forced down once at registration; until its first failure, being down means "not yet up".
  if (state.downTransitions <= 1 && (passed || state.checkStatus === 'INI' || state.checkStatus === '')) return {kind: 'registering'}
  if (state.downTransitions <= 1 && registration && registration.sinceRegisteredMs < registration.check.unhealthyThreshold * registration.check.intervalSeconds * 1000) {
    return {kind: 'registering'}
  }
  if (passed) return {kind: 'recovering'}
  return {kind: 'failing', timeout: /TOUT$/.test(state.checkStatus), httpCode: state.checkStatus === 'L7STS' ? state.checkCode : undefined}
}

/**
 * HAProxy's config rendered again from lb.json, then a reload (SIGUSR2 to the master, which keeps
 * its pid) with the server states saved first, so drains and health survive it. Needed when a
 * backend-level setting changes (ConfigureHealthCheck's timeout, its target); servers come and go
 * at run time without one. The config's `node` name is a hash of it: the reload is done when the
 * worker reports that name. A master still busy with the reload before drops a SIGUSR2, so the
 * signal is sent again until the new config runs.
 */
export async function reloadPlane(plane: DataPlane, cloud: CloudFile, state: LbState, timeoutMs = 10_000): Promise<void> {
  const files = plane.haproxy
  const config = renderHaproxyConfig({files, fronts: plane.fronts, state, addresses: instanceAddresses(cloud)})
  const wanted = configNode(config)
  await writeAtomic(files.config, config)
  const running = await workerInfo(files.socket).catch(() => undefined)
  if (running === undefined) return // not running: the next start reads the new config
  if (running.node === wanted) return // already runs this config
  await writeAtomic(files.stateFile, await serversStateDump(files.socket))
  const master = existsSync(files.pidFile) ? Number(readFileSync(files.pidFile, 'utf8').trim()) : NaN
  if (!Number.isInteger(master) || master <= 1) throw new Error(`HAProxy's pid file ${files.pidFile} holds no pid`)
  const deadline = Date.now() + timeoutMs
  let signalled = 0
  while (Date.now() < deadline) {
    if (Date.now() - signalled > 500) {
      process.kill(master, 'SIGUSR2')
      signalled = Date.now()
    }
    await new Promise((r) => setTimeout(r, 50))
    const now = await workerInfo(files.socket).catch(() => undefined)
    if (now?.node === wanted) return
  }
  throw new Error(`HAProxy did not reload within ${timeoutMs} ms (see its log)`)
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, text)
  await rename(tmp, file)
}

/**
 * One pass over the members still draining: a member whose connections are gone, or whose
 * draining timeout has passed, is put in maintenance and removed. The endpoint runs this a few
 * times a second while anything drains.
 */
export async function finishDrains(dir: string, readCloud: () => Promise<CloudFile>, now = Date.now()): Promise<number> {
  const peek = await readLbState(dir).catch(() => ({pools: []}) as LbState)
  if (!peek.pools.some((p) => p.draining.length > 0)) return 0
  const plane = dataPlaneOf(await readCloud())
  const states = await planeStates(plane)
  return changeLbState(dir, async (state) => {
    let finished = 0
    for (const pool of state.pools) {
      const keep = []
      for (const m of pool.draining) {
        const s = memberState(states, pool, m)
        const idle = plane === undefined || (s !== undefined && s.sessions === 0)
        if (idle || now >= Date.parse(m.until)) {
          if (plane) await removeMember(plane, pool, m).catch(() => undefined)
          finished++
        } else keep.push(m)
      }
      pool.draining = keep
    }
    return finished
  })
}

