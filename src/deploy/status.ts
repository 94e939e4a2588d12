import pMap from 'p-map'

import type {EnvironmentConfig} from '../config/schema.js'
import {errorText} from '../errors.js'
import type {Host} from '../inventory/host.js'
import {commandLine, type RemoteStep} from '../ssh/command.js'
import {execOn} from '../ssh/exec.js'
import type {Connection, ConnectionPool} from '../ssh/pool.js'
import {localAuditFile, localAuditKey, parseAudit, readLocalAudit, type AuditEntry, type LocalAuditKey} from './audit.js'
import {deploySettings, healthPort} from './context.js'
import {askThrough} from './gate.js'
import {unfinishedRuns, type UnfinishedRun} from './history.js'
import {isStale, parseReadLock, readLockStep, type LockHolder} from './lock.js'
import * as steps from './steps.js'

/** `feedops releases` and `feedops audit`: read-only looks at every host's layout. */

export interface HostReleases {
  host: string
  /** Release current points at. */
  current: string | null
  /** Release the running process reports on its health URL (null: nothing answers). */
  running: string | null
  /** The pid that answers. */
  pid: number | null
  /** current and the running process disagree (a failed restart, a process left over). */
  differs: boolean
  releases: string[]
  bad: string[]
  abandoned: string[]
  /** Restarts of the app by its supervisor since it was started (null: no supervisor state, e.g. systemd). */
  restarts: number | null
  /** The supervisor stopped restarting the app: why. */
  gaveUp: string | null
  runtime: boolean
  error: string | null
}

export interface FleetStatus {
  hosts: HostReleases[]
  /** The fleet's deploy lock: who holds it, and whether its heartbeat is stale. */
  lock: {host: string; holder: LockHolder | null; stale: boolean; error?: string}
  /** Runs that took the lock and never wrote their end. */
  unfinished: UnfinishedRun[]
  /** The hosts run several releases: which, and the command that converges them. */
  split: {releases: Record<string, string[]>; converge: string} | null
}

async function onHost<T>(pool: ConnectionPool, host: Host, work: (run: (step: RemoteStep) => Promise<string>, conn: Connection) => Promise<T>): Promise<T> {
  const conn = await pool.connect(host)
  return work(async (step) => {
    const r = await execOn(conn, commandLine(step), {timeoutMs: 30_000})
    if (r.exitCode !== 0) throw new Error(r.stderr.trim().split('\n').at(-1) || `exit ${r.exitCode}`)
    return r.stdout
  }, conn)
}

/**
 * A split fleet's way back to one release: the one most hosts run (newest first on a tie) that every host has
 * and none marks, as a `rollback --to`; none such: a new deploy.
 */
export function convergeCommand(rows: readonly HostReleases[]): FleetStatus['split'] {
  const ok = rows.filter((r) => !r.error)
  const by: Record<string, string[]> = {}
  for (const r of ok) (by[r.current ?? '(none)'] ??= []).push(r.host)
  if (Object.keys(by).length <= 1) return null
  const usable = (id: string) => id !== '(none)' && ok.every((r) => r.releases.includes(id) && !r.bad.includes(id) && !r.abandoned.includes(id))
  const pick = Object.entries(by)
    .sort((a, b) => b[1].length - a[1].length || b[0].localeCompare(a[0]))
    .find(([id]) => usable(id))
  return {releases: by, converge: pick ? `feedops rollback --to ${pick[0]}` : 'feedops deploy'}
}

export async function listReleases(env: EnvironmentConfig, hosts: readonly Host[], pool: ConnectionPool, lockHost: Host = hosts[0]!): Promise<FleetStatus> {
  const settings = deploySettings(env)
  const port = healthPort(settings, env)
  const audits = new Map<string, AuditEntry[]>()
  const rows = await pMap(
    hosts,
    async (host): Promise<HostReleases> => {
      try {
        return await onHost(pool, host, async (run, conn) => {
          const [probe, answer] = await Promise.all([run(steps.probeStep(settings.path, settings.runtime)).then(steps.parseProbe), askThrough(conn, port, '/healthz')])
          audits.set(host.name, parseAudit(probe.audit))
          const running = answer.release ?? null
          return {
            host: host.name,
            current: probe.current,
            running,
            pid: answer.pid ?? null,
            differs: probe.current !== running,
            releases: probe.releases,
            bad: probe.bad,
            abandoned: probe.abandoned,
            restarts: probe.supervisor ? probe.supervisor.restarts : null,
            gaveUp: probe.supervisor?.gaveUp ?? null,
            runtime: probe.hasRuntime,
            error: null,
          }
        })
      } catch (err) {
        return {host: host.name, current: null, running: null, pid: null, differs: false, releases: [], bad: [], abandoned: [], restarts: null, gaveUp: null, runtime: false, error: errorText(err)}
      }
    },
    {concurrency: env.ssh.concurrency},
  )
  const lock = await onHost(pool, lockHost, async (run) => {
    const root = steps.parseProbe(await run(steps.probeStep(settings.path, settings.runtime))).root
    const holder = parseReadLock(await run(readLockStep(steps.hostLayout(root))))
    return {host: lockHost.name, holder, stale: holder ? isStale(holder, settings.lockStaleSeconds) : false}
  }).catch((err: unknown) => ({host: lockHost.name, holder: null, stale: false, error: errorText(err)}))
  return {hosts: rows, lock, unfinished: unfinishedRuns(audits), split: convergeCommand(rows)}
}

export interface AuditRow extends AuditEntry {
  /** Where the line was read: a host name, or `local`. */
  source: string
}

export interface AuditReport {
  /** The local log read: this fleet's (environment and inventory), and where it is. */
  local: LocalAuditKey & {file: string}
  entries: AuditRow[]
  unreachable: {host: string; error: string}[]
}

/** Every host's audit.log and the local one, oldest first. */
export async function readAudit(env: EnvironmentConfig, hosts: readonly Host[], pool: ConnectionPool, environment: string): Promise<AuditReport> {
  const settings = deploySettings(env)
  const unreachable: AuditReport['unreachable'] = []
  const perHost = await pMap(
    hosts,
    async (host) => {
      try {
        return await onHost(pool, host, async (run) => {
          const probe = steps.parseProbe(await run(steps.probeStep(settings.path, settings.runtime)))
          return parseAudit(await run(steps.readAuditStep(steps.hostLayout(probe.root)))).map((e) => ({...e, source: host.name}))
        })
      } catch (err) {
        unreachable.push({host: host.name, error: errorText(err)})
        return []
      }
    },
    {concurrency: env.ssh.concurrency},
  )
  const key = localAuditKey(environment, env)
  const file = localAuditFile(key)
  const local = readLocalAudit(file).map((e) => ({...e, source: 'local'}))
  const entries = [...local, ...perHost.flat()].sort((a, b) => a.at.localeCompare(b.at) || a.source.localeCompare(b.source))
  return {local: {...key, file}, entries, unreachable}
}
