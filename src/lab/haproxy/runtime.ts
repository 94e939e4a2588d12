import {createConnection} from 'node:net'

/**
 * HAProxy's runtime API (the stats socket, level admin), as the lab's ELB drives it. Each call opens
 * the socket, sends its commands separated by `;` (HAProxy runs them in order on one connection) and
 * reads until HAProxy closes it. See HAProxy's management guide, "Unix Socket commands".
 */

export class HaproxyUnavailable extends Error {
  override readonly name = 'HaproxyUnavailable'
}

/** The answer of each command, split on HAProxy's empty line between them, or one error. */
export async function runtimeCommand(socket: string, commands: string[], timeoutMs = 3000): Promise<string> {
  for (const c of commands) if (/[;\n\r]/.test(c)) throw new Error(`runtime command with a separator in it: ${JSON.stringify(c)}`)
  return new Promise((resolve, reject) => {
    const conn = createConnection({path: socket})
    let out = ''
    const timer = setTimeout(() => {
      conn.destroy()
      reject(new HaproxyUnavailable(`HAProxy's runtime socket ${socket} did not answer within ${timeoutMs} ms`))
    }, timeoutMs)
    conn.setEncoding('utf8')
    conn.on('connect', () => conn.end(`${commands.join('; ')}\n`))
    conn.on('data', (chunk: string) => (out += chunk))
    conn.on('error', (err) => {
      clearTimeout(timer)
      reject(new HaproxyUnavailable(`HAProxy's runtime socket ${socket}: ${err.message}`))
    })
    conn.on('close', () => {
      clearTimeout(timer)
      resolve(out)
    })
  })
}

/** Runs commands that answer nothing on success; an answer that names a failure is thrown. */
export async function runtimeAction(socket: string, commands: string[]): Promise<void> {
  const out = (await runtimeCommand(socket, commands)).trim()
  const bad = out.split('\n').map((l) => l.trim()).filter((l) => l && !okAnswers.some((ok) => ok.test(l)))
  if (bad.length > 0) throw new Error(`HAProxy refused ${commands.join('; ')}: ${bad.join(' | ')}`)
}

/** What HAProxy prints for a command that worked (most print nothing). */
const okAnswers = [/^New server registered\.$/, /^Server deleted\.$/]

/** srv_op_state of `show servers state`. */
export const enum OpState {
  stopped = 0,
  starting = 1,
  running = 2,
  stopping = 3,
}

/** srv_admin_state bits. */
export const AdminFlag = {forcedMaint: 0x01, inheritedMaint: 0x02, configMaint: 0x04, forcedDrain: 0x08, inheritedDrain: 0x10, resolutionMaint: 0x20} as const

export interface ServerState {
  backend: string
  server: string
  address: string
  port: number
  opState: number
  adminState: number
  /** HAProxy's check status name from `show stat` (L4OK, L4CON, L4TOUT, L7STS, INI…), '' when not checked. */
  checkStatus: string
  /** The HTTP status of the last HTTP check, when there was one. */
  checkCode?: number
  /** Health-check counter: 0…rise+fall-1; at or above rise the server is up. */
  checkHealth: number
  rise: number
  fall: number
  /** Current sessions on the server (requests being served). */
  sessions: number
  /** UP→DOWN transitions since the server was made. */
  downTransitions: number
  /** The status column: UP, DOWN, MAINT, DRAIN, "UP 1/2", "DOWN 1/2", no check… */
  status: string
}

/** Every server of the backends, from `show stat` (HAProxy's CSV), keyed "backend/server". */
export async function serverStates(socket: string): Promise<Map<string, ServerState>> {
  const [statText, stateText] = (await runtimeCommand(socket, ['show stat -1 4 -1', 'show servers state'])).split(/\n\n/)
  const states = new Map<string, {opState: number; adminState: number; port: number}>()
  for (const line of (stateText ?? '').split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f.length < 19 || line.startsWith('#') || !/^[0-9]+$/.test(f[0]!)) continue
    states.set(`${f[1]}/${f[3]}`, {opState: Number(f[5]), adminState: Number(f[6]), port: Number(f[18])})
  }
  const lines = (statText ?? '').trim().split('\n')
  const header = (lines[0] ?? '').replace(/^# /, '').split(',')
  const col = (name: string) => header.indexOf(name)
  const result = new Map<string, ServerState>()
  for (const line of lines.slice(1)) {
    const f = line.split(',')
    const get = (name: string) => f[col(name)] ?? ''
    const key = `${get('pxname')}/${get('svname')}`
    const st = states.get(key)
    const addr = get('addr')
    result.set(key, {
      backend: get('pxname'),
      server: get('svname'),
      address: addr.replace(/:[0-9]+$/, ''),
      port: st?.port ?? Number(addr.split(':').at(-1)),
      opState: st?.opState ?? (get('status').startsWith('UP') ? OpState.running : OpState.stopped),
      adminState: st?.adminState ?? 0,
      checkStatus: get('check_status').replace(/^\* /, ''),
      checkCode: get('check_code') ? Number(get('check_code')) : undefined,
      checkHealth: Number(get('check_health') || 0),
      rise: Number(get('check_rise') || 0),
      fall: Number(get('check_fall') || 0),
      sessions: Number(get('scur') || 0),
      downTransitions: Number(get('chkdown') || 0),
      status: get('status'),
    })
  }
  return result
}

/** The running worker's pid and `node` name (`show info`); a reload to a new config changes both. */
export async function workerInfo(socket: string): Promise<{pid: number; node: string} | undefined> {
  const out = await runtimeCommand(socket, ['show info'], 1000)
  const pid = /^Pid: ([0-9]+)$/m.exec(out)?.[1]
  const node = /^node: (.*)$/m.exec(out)?.[1] ?? ''
  return pid ? {pid: Number(pid), node} : undefined
}

/** `show servers state` as HAProxy writes it, for `server-state-file` across a reload. */
export async function serversStateDump(socket: string): Promise<string> {
  return runtimeCommand(socket, ['show servers state'])
}
