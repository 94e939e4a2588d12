import pMap from 'p-map'

import type {EnvironmentConfig} from '../config/schema.js'
import {errorText} from '../errors.js'
import type {Host} from '../inventory/host.js'
import {commandLine, type RemoteStep} from '../ssh/command.js'
import {execOn} from '../ssh/exec.js'
import type {Connection, ConnectionPool} from '../ssh/pool.js'
import {localAuditFile, localAuditKey, parseAudit, readLocalAudit, type AuditEntry, type LocalAuditKey} from './audit.js'
import {askThrough} from './gate.js'
import {deploySettings, healthPort} from './run.js'
import * as steps from './steps.js'

/** `feedops releases` and `feedops audit`: read-only looks at every host's layout. */

export interface HostReleases {
  host: string
  /** Release current points at. */
  current: string | null
  /** Release the running process reports on its health URL (null: nothing answers). */
  running: string | null
  /** current and the running process disagree (a failed restart, a process left over). */
  differs: boolean
  releases: string[]
  bad: string[]
  runtime: boolean
  error: string | null
}

async function onHost<T>(pool: ConnectionPool, host: Host, work: (run: (step: RemoteStep) => Promise<string>, conn: Connection) => Promise<T>): Promise<T> {
  const conn = await pool.connect(host)
  return work(async (step) => {
    const r = await execOn(conn, commandLine(step), {timeoutMs: 30_000})
    if (r.exitCode !== 0) throw new Error(r.stderr.trim().split('\n').at(-1) || `exit ${r.exitCode}`)
    return r.stdout
  }, conn)
}

export async function listReleases(env: EnvironmentConfig, hosts: readonly Host[], pool: ConnectionPool): Promise<HostReleases[]> {
  const settings = deploySettings(env)
  const port = healthPort(settings, env)
  return pMap(
    hosts,
    async (host): Promise<HostReleases> => {
      try {
        return await onHost(pool, host, async (run, conn) => {
          const [probe, answer] = await Promise.all([run(steps.probeStep(settings.path, settings.runtime)).then(steps.parseProbe), askThrough(conn, port, '/healthz')])
          const running = answer.release ?? null
          return {host: host.name, current: probe.current, running, differs: probe.current !== running, releases: probe.releases, bad: probe.bad, runtime: probe.hasRuntime, error: null}
        })
      } catch (err) {
        return {host: host.name, current: null, running: null, differs: false, releases: [], bad: [], runtime: false, error: errorText(err)}
      }
    },
    {concurrency: env.ssh.concurrency},
  )
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
