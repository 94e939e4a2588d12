import {appendFileSync, existsSync, mkdirSync, readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'

/**
 * One JSON line per event of a deploy or rollback: who, when, what. A run writes `started` on every host
 * when it holds the lock (with its run id), `switched` on a host in the same command that moves the host's
 * current link (from, to; `back` when it undoes its own move), and `finished` or `rolled back` at its end,
 * with the result per host; that last line also goes to the operator's local log
 * ($XDG_STATE_HOME/feedops/audit.log, default ~/.local/state/feedops/audit.log). A run that died leaves a
 * `started` with no end: the next run reports it (src/deploy/history.ts). Lines from before events existed
 * have no `event` and read as `finished`.
 */
export interface AuditEntry {
  at: string
  who: string
  action: 'deploy' | 'rollback'
  environment: string
  release: string
  /** The end's result (finished lines, and lines from before events existed). */
  result?: 'ok' | 'failed' | 'interrupted' | 'rolled back' | 'nothing to do'
  /** host → outcome (the end's line) */
  hosts: Record<string, string>
  message?: string
  /** The run that wrote the line. */
  run?: string
  event?: AuditEvent
  /** switched: the host and its move. */
  host?: string
  from?: string | null
  to?: string | null
  back?: boolean
  /** The end's line: runs this one found unfinished (their `started` without an end), now accounted for. */
  accounted?: string[]
}

export type AuditEvent = 'started' | 'switched' | 'finished' | 'rolled back'

/** The event of a line (a line from before events existed is an end). */
export const eventOf = (e: AuditEntry): AuditEvent => e.event ?? 'finished'

export function localAuditFile(envVars: NodeJS.ProcessEnv = process.env): string {
  return path.join(envVars.XDG_STATE_HOME || path.join(homedir(), '.local', 'state'), 'feedops', 'audit.log')
}

export function auditLine(e: AuditEntry): string {
  return JSON.stringify(e)
}

export function appendLocalAudit(e: AuditEntry, file = localAuditFile()): void {
  mkdirSync(path.dirname(file), {recursive: true})
  appendFileSync(file, `${auditLine(e)}\n`)
}

/** Entries of an audit log's text; lines that are not entries are skipped. */
export function parseAudit(text: string): AuditEntry[] {
  const out: AuditEntry[] = []
  for (const line of text.split('\n')) {
    if (!line.trim()) continue
    try {
      const e = JSON.parse(line) as AuditEntry
      if (e && typeof e.at === 'string' && typeof e.release === 'string') out.push({...e, hosts: e.hosts ?? {}})
    } catch {
      // a torn line from a host that died mid-write
    }
  }
  return out
}

export function readLocalAudit(file = localAuditFile()): AuditEntry[] {
  return existsSync(file) ? parseAudit(readFileSync(file, 'utf8')) : []
}
