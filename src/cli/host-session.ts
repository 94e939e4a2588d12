import type {EnvironmentConfig} from '../config/schema.js'
import type {Host} from '../inventory/host.js'
import type {ConnectionPool} from '../ssh/pool.js'
import {openSession} from '../ssh/session.js'
import {hostSelection, type HostFlagValues} from './host-flags.js'
import {interruptedWord, trapInterrupts} from './interrupts.js'

/** What the work over the selected hosts gets: the hosts, the open pool and the settings from the flags. */
export interface HostSession {
  hosts: Host[]
  /** Every host of the inventory, selected or not. */
  inventory: Host[]
  pool: ConnectionPool
  /** Aborts on Ctrl-C/SIGTERM: stop what was started on each host (execOn does), start nothing new. */
  signal: AbortSignal
  concurrency: number
  /** Per command, in ms (0: none). */
  timeoutMs: number
}

export interface HostSessionOptions {
  /** No interrupt notice on stderr (--json). */
  quiet: boolean
  /** Picks hosts when neither --role nor --hosts is given (default: every host). */
  defaultSelection?: (all: Host[]) => Host[]
}

export interface HostSessionOutcome<T> {
  value: T
  /** The signal that interrupted the work, if any; the command then exits with ExitCode.interrupted. */
  interrupted: NodeJS.Signals | null
}

/**
 * The one way a command works over hosts: checks the selection and the ssh settings, opens the pool
 * (nothing is touched when either is bad), traps Ctrl-C/SIGTERM around `work`, and closes every
 * connection afterwards. On the first signal the session's signal aborts: each running command is
 * stopped on its host (bounded in time), hosts not yet connected are given up, and `work` returns what
 * finished so the command can report it. A second signal ends the process at once.
 */
export async function withHostSession<T>(
  env: EnvironmentConfig,
  flags: HostFlagValues,
  opts: HostSessionOptions,
  work: (session: HostSession) => Promise<T>,
): Promise<HostSessionOutcome<T>> {
  const connectTimeout = flags['connect-timeout']
  const {hosts, inventory, pool} = await openSession(env, {
    ...hostSelection(flags),
    acceptNew: flags['accept-new'] ?? false,
    concurrency: flags.concurrency ?? env.ssh.concurrency,
    ...(connectTimeout !== undefined ? {connectTimeout} : {}),
    ...(opts.defaultSelection ? {defaultSelection: opts.defaultSelection} : {}),
  })
  const trap = trapInterrupts((sig) => {
    if (!opts.quiet) {
      process.stderr.write(`\n${interruptedWord(sig)}: closing every connection once the command is stopped on every host (again to quit at once)\n`)
    }
    pool.stopConnecting()
  })
  try {
    const value = await work({
      hosts,
      inventory,
      pool,
      signal: trap.signal,
      concurrency: flags.concurrency ?? env.ssh.concurrency,
      timeoutMs: (flags.timeout ?? env.ssh.commandTimeout) * 1000,
    })
    return {value, interrupted: trap.received ?? null}
  } finally {
    trap.dispose()
    pool.close()
  }
}
