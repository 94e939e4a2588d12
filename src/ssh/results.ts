import {textTable} from '../cli/text-table.js'

/** Per-host outcome of `feedops run` (what --json prints per host). */
export type HostStatus = 'ok' | 'failed' | 'timeout' | 'unreachable' | 'refused' | 'interrupted'

export interface HostResult {
  host: string
  address: string
  ok: boolean
  exitCode: number | null
  signal: string | null
  stdout: string
  stderr: string
  durationMs: number
  error: string | null
  status: HostStatus
  /** The bastion the host was reached through. */
  via?: string
  /** Present when output was cut: bytes of each stream beyond the per-host limit, not kept here. */
  truncated?: {stdout: number; stderr: number}
}

export interface RunSummary {
  hosts: number
  ok: number
  failed: number
  interrupted: number
}

export function summarize(results: readonly {ok: boolean; status: string}[]): RunSummary {
  const interrupted = results.filter((r) => r.status === 'interrupted').length
  const ok = results.filter((r) => r.ok).length
  return {hosts: results.length, ok, failed: results.length - ok - interrupted, interrupted}
}

export function formatDuration(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(1)} s`
}

function exitText(r: HostResult): string {
  if (r.exitCode !== null) return String(r.exitCode)
  if (r.signal) return r.signal
  return '-'
}

/** The summary table printed after a run: host, exit code, duration, and what went wrong. */
export function formatRunSummary(results: readonly HostResult[], wallMs: number): string {
  const rows = results.map((r) => [r.host, exitText(r), r.status === 'interrupted' && r.durationMs === 0 ? '-' : formatDuration(r.durationMs), r.status, r.error ?? ''])
  const s = summarize(results)
  const parts = [`${s.ok} ok`, `${s.failed} failed`]
  if (s.interrupted > 0) parts.push(`${s.interrupted} interrupted`)
  return textTable(['HOST', 'EXIT', 'TIME', 'STATUS', 'ERROR'], rows) + `${parts.join(', ')} (${s.hosts} host${s.hosts === 1 ? '' : 's'}) in ${formatDuration(wallMs)}\n`
}
