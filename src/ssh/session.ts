import type {EnvironmentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {selectHosts, type Host, type HostSelection} from '../inventory/host.js'
import {loadInventory} from '../inventory/index.js'
import {ConnectionPool} from './pool.js'

export interface SessionOptions extends HostSelection {
  acceptNew?: boolean
  /** Seconds; overrides ssh.connectTimeout. */
  connectTimeout?: number
  /** Picks hosts when neither role nor hosts is given (default: every host). */
  defaultSelection?: (all: Host[]) => Host[]
}

export interface Session {
  hosts: Host[]
  pool: ConnectionPool
}

/**
 * Everything a multi-host command needs before it touches a host: the inventory and the connection pool
 * (known_hosts, ssh config, key checks) are loaded side by side; a bad selection or setting is a UserError
 * before any connection is opened.
 */
export async function openSession(env: EnvironmentConfig, opts: SessionOptions = {}): Promise<Session> {
  const ssh = opts.connectTimeout !== undefined ? {...env.ssh, connectTimeout: opts.connectTimeout} : env.ssh
  const [all, pool] = await Promise.all([loadInventory(env), ConnectionPool.create(ssh, {acceptNew: opts.acceptNew ?? false})])
  const explicit = Boolean(opts.role) || (opts.hosts?.length ?? 0) > 0
  const hosts = explicit || !opts.defaultSelection ? selectHosts(all, opts) : opts.defaultSelection(all)
  if (hosts.length === 0) throw new UserError('The inventory has no hosts.', {fix: 'Check the inventory section of the config.'})
  return {hosts, pool}
}

export interface InterruptTrap {
  signal: AbortSignal
  /** The signal that interrupted the run, if any. */
  readonly received: NodeJS.Signals | undefined
  dispose(): void
}

/**
 * First SIGINT/SIGTERM: `onInterrupt` runs and the returned signal aborts, so the work winds down and
 * reports what finished. A second one exits at once with 130.
 */
export function trapInterrupts(onInterrupt: (sig: NodeJS.Signals) => void): InterruptTrap {
  const controller = new AbortController()
  let received: NodeJS.Signals | undefined
  const handler = (sig: NodeJS.Signals) => {
    if (received) process.exit(130)
    received = sig
    controller.abort()
    onInterrupt(sig)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return {
    signal: controller.signal,
    get received() {
      return received
    },
    dispose() {
      process.off('SIGINT', handler)
      process.off('SIGTERM', handler)
    },
  }
}

/** A whole-number option given as text (--concurrency 8); anything else is bad input naming the flag. */
export function parseIntegerOption(value: string | undefined, flag: string, range: {min: number; max?: number}): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value.trim())
  const max = range.max ?? Number.MAX_SAFE_INTEGER
  if (value.trim() === '' || !Number.isInteger(n) || n < range.min || n > max) {
    const want = range.max === undefined ? `a whole number of at least ${range.min}` : `between ${range.min} and ${range.max}`
    throw new UserError(`${flag} must be ${want}; got "${value}".`, {fix: `Pass ${flag} ${range.min === 0 ? '0' : range.min}${range.max === undefined ? ' or more' : `..${range.max}`}.`})
  }
  return n
}

/** Comma-separated names, blanks dropped. */
export function splitList(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
}
