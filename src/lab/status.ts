import {existsSync} from 'node:fs'
import path from 'node:path'

import {labPaths} from './layout.js'
import {isRunning} from './process.js'
import {readState, type LabState, type ProcessRecord} from './state.js'

export interface LabProcessStatus {
  /** sshd, nginx, postgres, pgbouncer, redis, memcached, cloud */
  component: string
  /** app1, nginx1, pg1, redis, memcached, cloud (with its component, unique) */
  name: string
  address: string
  port: number
  /** null when the lab has stopped it. */
  pid: number | null
  /** The recorded process is still running (same pid, start time and command line). */
  alive: boolean
  logFile: string
}

export interface LabStatus {
  /** Absolute lab dir. */
  dir: string
  /** null when there is no lab in dir. */
  net: number | null
  /** <dir>/feedops.yml, or null when not written yet. */
  configFile: string | null
  /** none: no lab here; up: every process alive; partial: some alive; down: none alive. */
  state: 'none' | 'up' | 'partial' | 'down'
  hosts: number
  nginx: number
  postgres: number
  processes: LabProcessStatus[]
}

export function isRecordRunning(r: ProcessRecord): boolean {
  return r.pid !== null && r.startTime !== null && isRunning({pid: r.pid, startTime: r.startTime, match: r.match})
}

export function statusOf(dir: string, state: LabState | undefined): LabStatus {
  const abs = path.resolve(dir)
  const configFile = existsSync(labPaths.config(abs)) ? labPaths.config(abs) : null
  if (!state) return {dir: abs, net: null, configFile, state: 'none', hosts: 0, nginx: 0, postgres: 0, processes: []}
  const processes = state.processes.map((r) => {
    const alive = isRecordRunning(r)
    return {component: r.component, name: r.name, address: r.address, port: r.port, pid: r.pid, alive, logFile: r.logFile}
  })
  const alive = processes.filter((p) => p.alive).length
  const overall = alive === 0 ? 'down' : alive === processes.length ? 'up' : 'partial'
  return {dir: abs, net: state.net, configFile, state: overall, hosts: state.hosts, nginx: state.nginx ?? 0, postgres: state.postgres, processes}
}

export async function labStatus(dir: string): Promise<LabStatus> {
  return statusOf(dir, readState(path.resolve(dir)))
}
