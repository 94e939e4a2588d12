import {createReadStream} from 'node:fs'

import pMap from 'p-map'

import type {Host} from '../inventory/host.js'
import {commandLine, type RemoteStep} from '../ssh/command.js'
import {execOn} from '../ssh/exec.js'
import type {Connection} from '../ssh/pool.js'
import type {AuditEntry} from './audit.js'
import {askThrough, type HealthAnswer} from './gate.js'
import type {DeployHostResult} from './result.js'
import * as steps from './steps.js'

/** One host's connection with the deploy's few operations on it, and what the run knows of the host. */

export class StepFailed extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null = null,
  ) {
    super(message)
  }
}

export class Remote {
  constructor(
    readonly host: Host,
    private readonly conn: Connection,
  ) {}

  async run(step: RemoteStep, opts: {stdin?: string; upload?: string; timeoutMs?: number; onStdout?: (chunk: Buffer) => void} = {}): Promise<string> {
    // A file to send is the command's stdin: no SFTP session, and the upload and what the host does with it
    // are one command (one round trip).
    const file = opts.upload ? createReadStream(opts.upload) : undefined
    try {
      const stdin = file ?? opts.stdin
      const r = await execOn(this.conn, commandLine(step), {
        timeoutMs: opts.timeoutMs ?? 120_000,
        ...(stdin !== undefined ? {stdin} : {}),
        ...(opts.onStdout ? {onStdout: opts.onStdout} : {}),
      })
      if (r.exitCode === 0) return r.stdout
      const detail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-1)[0] ?? ''
      const why = r.timedOut ? 'timed out' : r.exitCode === null ? 'lost the connection' : `exit ${r.exitCode}`
      throw new StepFailed(`${detail && !steps.MARKS.has(detail) ? detail : why}`, r.exitCode)
    } finally {
      file?.destroy()
    }
  }

  /** One GET of the app's health path on this host, through this connection (src/deploy/gate.ts). */
  ask(port: number, urlPath: string): Promise<HealthAnswer> {
    return askThrough(this.conn, port, urlPath)
  }
}

export interface HostState {
  host: Host
  remote?: Remote
  /** What the host looked like once this run held the lock. */
  probe?: steps.Probe
  layout?: steps.HostLayout
  /** The host's audit lines (from the probe). */
  audit: AuditEntry[]
  /** Its gate, or a re-check after it, failed on this host: the release's code failed here (marked BAD here). */
  codeFailed: boolean
  /** Its gate failed for the release's config, not its code (failure.ts): not marked BAD. */
  configFailed?: boolean
  result: DeployHostResult
}

export function newHostState(host: Host): HostState {
  return {
    host,
    audit: [],
    codeFailed: false,
    result: {host: host.name, address: host.address, outcome: 'not-started', previous: null, current: null, target: null, pid: null, runtimeUploaded: false, error: null, phases: []},
  }
}

/** Work on every host at once (bounded); hosts not started when the signal fires get `skipped`. */
export async function eachState(
  states: readonly HostState[],
  work: (s: HostState) => Promise<void>,
  opts: {concurrency: number; signal?: AbortSignal | undefined; skipped?: (s: HostState) => void},
): Promise<void> {
  await pMap(states, (s) => (opts.signal?.aborted ? opts.skipped?.(s) : work(s)), {concurrency: Math.max(1, opts.concurrency)})
}
