import {createHash} from 'node:crypto'
import {appendFileSync, existsSync, mkdirSync, readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'

import type {EnvironmentConfig} from '../config/schema.js'

/**
 * One JSON line per event of a deploy or rollback: who, when, what. A run writes `started` on every host
 * when it holds the lock (with its run id), `switched` on a host in the same command that moves the host's
 * current link (from, to; `back` when it undoes its own move), and `finished` or `rolled back` at its end,
 * with the result per host; that last line also goes to the operator's local log
 * of that fleet (localAuditFile: per environment and inventory). A run that died leaves a
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


/**
 * Which fleet a local log is about: the environment and its inventory (a static host list, or EC2 filters at an
 * endpoint), so two labs (both `lab`) or two fleets of one name never share a log.
 */
export interface LocalAuditKey {
  environment: string
  /** What the inventory is, in words: `static: app1, app2` or `ec2 Env=lab at http://127.0.0.1:4566`. */
  inventory: string
}

export function localAuditKey(environment: string, env: Pick<EnvironmentConfig, 'inventory' | 'aws'>): LocalAuditKey {
  const inv = env.inventory
  const inventory =
    inv.source === 'static'
      ? `static: ${inv.hosts.map((h) => (h.address && h.address !== h.name ? `${h.name}@${h.address}` : h.name)).join(', ')}`
      : `ec2 ${Object.entries(inv.filters).map(([k, v]) => `${k}=${v}`).join(',') || '(no filter)'} ${env.aws.endpoint ? `at ${env.aws.endpoint}` : `in ${env.aws.region ?? 'the default region'}`}${env.aws.profile ? ` (profile ${env.aws.profile})` : ''}`
  return {environment, inventory}
}

/**
 * $XDG_STATE_HOME/feedops/audit/<environment>-<hash of the inventory>.log (default ~/.local/state/…), one per
 * fleet. Without a key: the log of before (audit.log beside that folder), shared by every fleet.
 */
export function localAuditFile(key?: LocalAuditKey, envVars: NodeJS.ProcessEnv = process.env): string {
  const dir = path.join(envVars.XDG_STATE_HOME || path.join(homedir(), '.local', 'state'), 'feedops')
  if (!key) return path.join(dir, 'audit.log')
  const hash = createHash('sha256').update(`${key.environment}\n${key.inventory}`).digest('hex').slice(0, 12)
  const safe = key.environment.replace(/[^a-z0-9_-]/gi, '_')
  return path.join(dir, 'audit', `${safe}-${hash}.log`)
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
