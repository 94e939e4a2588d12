import {randomBytes} from 'node:crypto'
import {hostname, userInfo} from 'node:os'

import type {ManualDrain, NodeCounts} from '../policy.js'

/**
 * What survives between passes (so hysteresis works across cron runs) and who may act now. Two stores
 * keep it: a state file on this machine (src/lb/state/file.ts) or Redis, shared by several operator
 * machines (src/lb/state/redis.ts). Both give the same contract:
 *
 * - `acquire` takes the pass lock or says who holds it, at once (or after `waitMs`); only its holder's
 *   token releases it, and a lock older than lb.lockStaleSeconds belonged to a run that died and is taken over;
 * - `read` and `write` are the whole state, written atomically (a reader never sees half of it); a
 *   pass reads and writes it only while it holds the lock.
 */

export interface KeptCounts extends NodeCounts {
  /** When the last probe counted was made (ISO). */
  at: string
  /** Its failure, when it failed. */
  error?: string
}

export interface LbState {
  counts: Record<string, KeptCounts>
  drains: Record<string, ManualDrain>
}

export const emptyState = (): LbState => ({counts: {}, drains: {}})

export interface LockInfo {
  /** user@machine */
  by: string
  host: string
  pid: number
  since: string
  /** rotate, watch, drain nginx2… */
  what: string
  token: string
}

export interface HeldLock {
  info: LockInfo
  release(): Promise<void>
}

export type Acquired = {ok: true; lock: HeldLock; tookOver?: LockInfo} | {ok: false; holder: LockInfo | undefined}

export interface LbStateStore {
  /** "state file /path", "Redis 127.0.0.1:6379 key feedops:lb:…" */
  readonly where: string
  acquire(what: string, waitMs?: number): Promise<Acquired>
  read(): Promise<LbState>
  write(state: LbState): Promise<void>
  close(): Promise<void>
}

export function newLockInfo(what: string): LockInfo {
  return {
    by: `${userInfo().username}@${hostname()}`,
    host: hostname(),
    pid: process.pid,
    since: new Date().toISOString(),
    what,
    token: randomBytes(12).toString('hex'),
  }
}

export function whoAmI(): string {
  return `${userInfo().username}@${hostname()}`
}

/** A state read back: anything that is not the shape is a bug or a hand edit; fail loudly, not silently reset. */
export function parseState(text: string, where: string): LbState {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new Error(`${where} is not valid JSON: ${(err as Error).message}`)
  }
  const s = raw as Partial<LbState>
  if (typeof s !== 'object' || s === null || typeof s.counts !== 'object' || typeof s.drains !== 'object') {
    throw new Error(`${where} does not hold lb state ({counts, drains})`)
  }
  return {counts: s.counts ?? {}, drains: s.drains ?? {}}
}

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve()
    const t = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), {once: true})
  })
