import {appendFileSync, existsSync, mkdirSync, readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'

/**
 * One JSON line per deploy or rollback: who, when, what, and the result per host. The same line is
 * appended to audit.log on every host the run touched and to the operator's local log
 * ($XDG_STATE_HOME/feedops/audit.log, default ~/.local/state/feedops/audit.log).
 */
export interface AuditEntry {
  at: string
  who: string
  action: 'deploy' | 'rollback'
  environment: string
  release: string
  result: 'ok' | 'failed' | 'interrupted'
  /** host → outcome */
  hosts: Record<string, string>
  message?: string
}

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
      if (e && typeof e.at === 'string' && typeof e.release === 'string') out.push(e)
    } catch {
      // a torn line from a host that died mid-write
    }
  }
  return out
}

export function readLocalAudit(file = localAuditFile()): AuditEntry[] {
  return existsSync(file) ? parseAudit(readFileSync(file, 'utf8')) : []
}
