import {setMaxListeners} from 'node:events'

import pMap from 'p-map'

import type {Host} from '../inventory/host.js'
import {markPhase} from '../start-timing.js'
import {execOn} from './exec.js'
import {ConnectError, type ConnectionPool} from './pool.js'
import type {HostResult, HostStatus} from './results.js'

export interface EachHostOptions {
  /** How many hosts are worked on at once. */
  concurrency: number
  signal?: AbortSignal
}

/**
 * Runs `work` for every host at once (bounded by concurrency) and returns its results in host order.
 * `work` must not throw; hosts not started when the signal fires get `interrupted(host)`.
 */
export async function eachHost<T>(
  hosts: readonly Host[],
  work: (host: Host) => Promise<T>,
  interrupted: (host: Host) => T,
  opts: EachHostOptions,
): Promise<T[]> {
  // Every running command listens for the abort; many hosts are not a leak.
  if (opts.signal) setMaxListeners(0, opts.signal)
  return pMap(hosts, (host) => (opts.signal?.aborted ? interrupted(host) : work(host)), {
    concurrency: Math.max(1, opts.concurrency),
  })
}

export interface RunCommandOptions extends EachHostOptions {
  pool: ConnectionPool
  /** Kill the command on a host after this many ms (0: no limit). */
  timeoutMs?: number
  /** Bytes of each stream kept per host in the result (default RUN_KEEP_BYTES); onOutput still sees all. */
  keepBytes?: number
  onOutput?: (host: Host, stream: 'stdout' | 'stderr', chunk: Buffer) => void
  onResult?: (result: HostResult) => void
}

/** Output kept per host and stream by runCommand: a fleet of hosts each printing gigabytes must not exhaust memory. */
export const RUN_KEEP_BYTES = 4 << 20

export function connectStatus(err: unknown): HostStatus {
  if (!(err instanceof ConnectError)) return 'unreachable'
  if (err.kind === 'interrupted') return 'interrupted'
  if (err.kind === 'hostkey' || err.kind === 'auth') return 'refused'
  return 'unreachable'
}

export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`
}

/** One shell command line on every host; a failing host is reported for that host while the others finish. */
export async function runCommand(hosts: readonly Host[], line: string, opts: RunCommandOptions): Promise<HostResult[]> {
  const base = (host: Host): Pick<HostResult, 'host' | 'address'> => ({host: host.name, address: host.address})
  const interrupted = (host: Host, durationMs = 0): HostResult => ({
    ...base(host),
    ok: false,
    exitCode: null,
    signal: null,
    stdout: '',
    stderr: '',
    durationMs,
    error: 'interrupted',
    status: 'interrupted',
  })

  const one = async (host: Host): Promise<HostResult> => {
    const start = performance.now()
    const elapsed = () => Math.round(performance.now() - start)
    let result: HostResult
    try {
      const conn = await opts.pool.connect(host)
      const via = conn.via ? {via: conn.via} : {}
      if (opts.signal?.aborted) {
        result = {...interrupted(host, elapsed()), ...via}
      } else {
        const r = await execOn(conn, line, {
          ...(opts.timeoutMs ? {timeoutMs: opts.timeoutMs} : {}),
          ...(opts.signal ? {signal: opts.signal} : {}),
          keepBytes: opts.keepBytes ?? RUN_KEEP_BYTES,
          onStdout: (c) => {
            markPhase('first byte', host.name)
            opts.onOutput?.(host, 'stdout', c)
          },
          onStderr: (c) => {
            markPhase('first byte', host.name)
            opts.onOutput?.(host, 'stderr', c)
          },
        })
        const status: HostStatus = r.timedOut ? 'timeout' : r.interrupted ? 'interrupted' : r.exitCode === 0 ? 'ok' : 'failed'
        let error: string | null = null
        if (r.timedOut) error = `timed out after ${seconds(opts.timeoutMs ?? 0)}`
        else if (r.interrupted) error = 'interrupted'
        else if (r.exitCode === null) error = r.signal ? `killed by signal ${r.signal}` : 'connection lost before the command finished'
        result = {
          ...base(host),
          ok: status === 'ok',
          exitCode: r.exitCode,
          signal: r.signal,
          stdout: r.stdout,
          stderr: r.stderr,
          durationMs: elapsed(),
          error,
          status,
          ...via,
          ...(r.dropped.stdout > 0 || r.dropped.stderr > 0 ? {truncated: r.dropped} : {}),
        }
      }
    } catch (err) {
      const status = opts.signal?.aborted ? 'interrupted' : connectStatus(err)
      result = {
        ...base(host),
        ok: false,
        exitCode: null,
        signal: null,
        stdout: '',
        stderr: '',
        durationMs: elapsed(),
        error: status === 'interrupted' ? 'interrupted' : (err as Error).message,
        status,
      }
    }
    opts.onResult?.(result)
    return result
  }

  return eachHost(hosts, one, (h) => {
    const r = interrupted(h)
    opts.onResult?.(r)
    return r
  }, opts)
}
