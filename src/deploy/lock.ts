import {randomBytes} from 'node:crypto'
import {hostname, userInfo} from 'node:os'

import type {RemoteStep} from '../ssh/command.js'
import type {HostLayout} from './steps.js'

/**
 * The fleet's deploy lock, as Kamal keeps it: a directory made with mkdir (atomic) under the layout root of
 * one host (the first host of the role, by name), holding owner.json (who, from where, pid, since, release,
 * message) and a heartbeat file the holder touches while it runs. Any operator's machine sees it. A lock
 * whose heartbeat is older than deploy.lockStaleSeconds belongs to a run that died: it is reported as stale
 * and only then may `--force-unlock` break it. These functions only build the commands and read their
 * answers; src/deploy/run.ts runs them.
 */

export interface LockOwner {
  /** user@machine */
  owner: string
  pid: number
  since: string
  action: 'deploy' | 'rollback'
  release: string
  message: string
  /** Random; only the holder's token releases or refreshes the lock. */
  token: string
}

export interface LockHolder {
  owner: Partial<LockOwner>
  /** Seconds since the holder's last heartbeat (on the lock host's clock). */
  heartbeatAgeS: number
}

export type LockAnswer = {state: 'acquired'; broke?: LockHolder} | {state: 'held'; holder: LockHolder}

/** Who runs this: deploy.operator, else $FEEDOPS_OPERATOR, else user@host. */
export function operatorName(setting?: string, envVars: NodeJS.ProcessEnv = process.env): string {
  return setting?.trim() || envVars.FEEDOPS_OPERATOR?.trim() || `${userInfo().username}@${hostname()}`
}

export function newLockOwner(action: LockOwner['action'], release: string, message: string, operator = operatorName()): LockOwner {
  return {
    owner: operator,
    pid: process.pid,
    since: new Date().toISOString(),
    action,
    release,
    message,
    token: randomBytes(12).toString('hex'),
  }
}

const sh = (script: string, ...args: string[]): RemoteStep => ({argv: ['sh', '-c', script, 'sh', ...args]})

const REPORT = 'a=$(( $(date +%s) - $(stat -c %Y "$1/heartbeat" 2>/dev/null || stat -c %Y "$1") )); printf "held %s " "$a"; tr -d "\\n" < "$1/owner.json" 2>/dev/null; echo'
const TAKE = 'mkdir "$1" 2>/dev/null && printf "%s\\n" "$2" > "$1/owner.json" && touch "$1/heartbeat"'

/** Takes the lock, or reports its holder (exit 3); with force, breaks it when its heartbeat is older than staleS. */
export function acquireStep(l: HostLayout, owner: LockOwner, staleS: number, force: boolean): RemoteStep {
  return sh(
    [
      'mkdir -p "$(dirname "$1")" || exit 1',
      `if ${TAKE}; then echo acquired; exit 0; fi`,
      REPORT,
      `if [ "$3" = 1 ] && [ "$a" -gt "$4" ]; then rm -rf "$1" && ${TAKE} && echo broken && exit 0; fi`,
      'exit 3',
    ].join('\n'),
    l.lock,
    JSON.stringify(owner),
    force ? '1' : '0',
    String(staleS),
  )
}

/** Who holds the lock, without taking it (prints `free` or a `held` line). */
export function readLockStep(l: HostLayout): RemoteStep {
  return sh(`[ -d "$1" ] || { echo free; exit 0; }; ${REPORT}`, l.lock)
}

export function heartbeatStep(l: HostLayout, owner: LockOwner): RemoteStep {
  return sh('grep -qF "$2" "$1/owner.json" 2>/dev/null && touch "$1/heartbeat"', l.lock, owner.token)
}

/** Rewrites owner.json (the release, once built) if the lock is still ours. */
export function updateOwnerStep(l: HostLayout, owner: LockOwner): RemoteStep {
  return sh('grep -qF "$2" "$1/owner.json" 2>/dev/null && printf "%s\\n" "$3" > "$1/owner.json.new" && mv -f "$1/owner.json.new" "$1/owner.json"', l.lock, owner.token, JSON.stringify(owner))
}

/**
 * Removes the lock only if it is still ours, and the folder it made on a host that had none (a run refused
 * at preflight leaves a fresh host as it found it; rmdir only removes an empty folder).
 */
export function releaseStep(l: HostLayout, owner: LockOwner): RemoteStep {
  return sh('if grep -qF "$2" "$1/owner.json" 2>/dev/null; then rm -rf "$1"; rmdir "$(dirname "$1")" 2>/dev/null; fi; true', l.lock, owner.token)
}

function parseHeld(line: string): LockHolder | undefined {
  const m = /^held (-?\d+) ?(.*)$/.exec(line.trim())
  if (!m) return undefined
  let owner: Partial<LockOwner> = {}
  try {
    owner = JSON.parse(m[2]!) as Partial<LockOwner>
  } catch {
    // a lock dir without a readable owner (a run that died while taking it): still a lock
  }
  const {token: _token, ...shown} = owner
  return {owner: shown, heartbeatAgeS: Number(m[1])}
}

export function parseAcquire(stdout: string): LockAnswer {
  const lines = stdout.split('\n').filter(Boolean)
  if (lines[0] === 'acquired') return {state: 'acquired'}
  const holder = parseHeld(lines[0] ?? '') ?? {owner: {}, heartbeatAgeS: 0}
  if (lines.includes('broken')) return {state: 'acquired', broke: holder}
  return {state: 'held', holder}
}

export function parseReadLock(stdout: string): LockHolder | null {
  return stdout.trim() === 'free' ? null : (parseHeld(stdout.split('\n')[0] ?? '') ?? {owner: {}, heartbeatAgeS: 0})
}

export function isStale(holder: LockHolder, staleS: number): boolean {
  return holder.heartbeatAgeS > staleS
}

/** "alice@laptop (pid 123) since …, deploying R: message; heartbeat 4 s ago" */
export function describeHolder(h: LockHolder): string {
  const o = h.owner
  const what = o.action ? `, ${o.action === 'rollback' ? 'rolling back' : 'deploying'}${o.release ? ` ${o.release}` : ' (release not decided yet)'}` : ''
  return `${o.owner ?? 'an unknown owner'}${o.pid ? ` (pid ${o.pid})` : ''}${o.since ? ` since ${o.since}` : ''}${what}${o.message ? `: "${o.message}"` : ''}; last heartbeat ${h.heartbeatAgeS} s ago`
}
