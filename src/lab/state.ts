import {existsSync, readFileSync, renameSync, writeFileSync} from 'node:fs'

import {UserError} from '../errors.js'
import {labPaths} from './layout.js'

/**
 * state.json: what the lab is (its size) and every process it started, with what identifies that
 * process later (pid + start time + command-line strings). `lab down` and `lab status` read only
 * this file, so they never touch a process the lab did not start.
 */

export interface ProcessRecord {
  /** Component id: sshd, nginx, postgres, pgbouncer, redis, memcached, cloud (later app, elb). */
  component: string
  /** app1, pg1, redis… unique in the lab. */
  name: string
  address: string
  port: number
  argv: string[]
  match: string[]
  logFile: string
  /** null once stopped. */
  pid: number | null
  startTime: number | null
  startedAt: string | null
}

export interface LabState {
  version: 1
  dir: string
  net: number
  hosts: number
  /** NGINX nodes (absent in state files written before they existed: 0). */
  nginx?: number
  postgres: number
  /** PgBouncer in front of each Postgres server (absent: false). */
  pgbouncer?: boolean
  /** Create the shard catalog and schemas when missing (absent: false). */
  shards?: boolean
  redis: boolean
  memcached: boolean
  cloud: boolean
  updatedAt: string
  processes: ProcessRecord[]
}

export function readState(dir: string): LabState | undefined {
  const file = labPaths.state(dir)
  if (!existsSync(file)) return undefined
  try {
    const state = JSON.parse(readFileSync(file, 'utf8')) as LabState
    if (state.version !== 1 || !Array.isArray(state.processes)) throw new Error('unknown format')
    return state
  } catch (err) {
    throw new UserError(`${file} is not a lab state file this version understands (${(err as Error).message}).`, {
      fix: 'Stop the processes it lists by hand if any still run, then remove the file and run `feedops lab up` again.',
    })
  }
}

/** Atomic replace, so a crash never leaves a half-written file that forgets pids. */
export function writeState(dir: string, state: LabState): void {
  const file = labPaths.state(dir)
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, `${JSON.stringify({...state, updatedAt: new Date().toISOString()}, null, 2)}\n`)
  renameSync(tmp, file)
}

export function recordKey(r: {component: string; name: string}): string {
  return `${r.component}/${r.name}`
}
