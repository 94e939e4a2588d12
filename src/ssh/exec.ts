import type {Readable} from 'node:stream'

import type {ClientChannel} from 'ssh2'

import type {Connection} from './pool.js'

export interface ExecOptions {
  /** Kill the command after this many ms (0 or undefined: no limit). */
  timeoutMs?: number
  /** Stops the command on the host when aborted (Ctrl-C), as a timeout does. */
  signal?: AbortSignal
  /** Sent to the command, then end of file: a string, or a stream (a file to upload). */
  stdin?: string | Readable
  onStdout?: (chunk: Buffer) => void
  onStderr?: (chunk: Buffer) => void
  /** Bytes of each stream kept in the result (default 16 MiB); the rest is still passed to the callbacks. */
  keepBytes?: number
}

export interface ExecResult {
  exitCode: number | null
  signal: string | null
  stdout: string
  stderr: string
  timedOut: boolean
  interrupted: boolean
  durationMs: number
  /** Bytes of each stream beyond keepBytes, passed to the callbacks but not kept in stdout/stderr. */
  dropped: {stdout: number; stderr: number}
}

const DEFAULT_KEEP = 16 << 20

/** Keeps the first `limit` bytes of a stream and counts the rest. */
class Collector {
  private chunks: Buffer[] = []
  private size = 0
  /** Bytes received beyond the limit, not kept. */
  dropped = 0
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    const room = Math.max(0, this.limit - this.size)
    if (chunk.length > room) this.dropped += chunk.length - room
    if (room === 0) return
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk
    this.chunks.push(part)
    this.size += part.length
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8')
  }
}

/** Runs one command line on an open connection. Never throws for a non-zero exit; throws if the channel cannot open. */
export async function execOn(conn: Connection, line: string, opts: ExecOptions = {}): Promise<ExecResult> {
  const start = performance.now()
  const keep = opts.keepBytes ?? DEFAULT_KEEP
  const out = new Collector(keep)
  const err = new Collector(keep)
  let channel: ClientChannel | undefined
  let timedOut = false
  let interrupted = false
  let timer: NodeJS.Timeout | undefined
  let forceDone: (() => void) | undefined

  // The host's result is final once the command is stopped: sshd only confirms the close when every
  // process holding the session's pipes has exited, so the close is not waited for.
  const stop = () => {
    if (!channel) return
    try {
      channel.signal('KILL')
    } catch {}
    channel.close()
    forceDone?.()
  }
  // sshd refuses signal requests in root sessions (no post-auth privilege separation), so on a
  // timeout or an interrupt the command's session is also killed from a second channel before the
  // result is reported; closing the channel alone would leave it running, reparented to init.
  let stopping = false
  const reapThenStop = () => {
    if (stopping) return
    stopping = true
    reapOthers(conn).finally(stop)
  }
  const onTimeout = () => {
    timedOut = true
    reapThenStop()
  }
  const onAbort = () => {
    interrupted = true
    reapThenStop()
  }
  if (opts.signal?.aborted) {
    return {exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, interrupted: true, durationMs: 0, dropped: {stdout: 0, stderr: 0}}
  }
  opts.signal?.addEventListener('abort', onAbort, {once: true})

  const forced = new Promise<null>((resolve) => (forceDone = () => resolve(null)))
  try {
    const running = conn.ssh.execCommand(line, {
      noTrim: true,
      ...(opts.stdin !== undefined ? {stdin: opts.stdin} : {}),
      onChannel: (ch) => {
        channel = ch
        if (opts.timeoutMs && opts.timeoutMs > 0) {
          timer = setTimeout(onTimeout, opts.timeoutMs)
        }
        if (opts.signal?.aborted) onAbort()
      },
      onStdout: (chunk) => {
        out.push(chunk)
        opts.onStdout?.(chunk)
      },
      onStderr: (chunk) => {
        err.push(chunk)
        opts.onStderr?.(chunk)
      },
    })
    const res = await Promise.race([running, forced])
    return {
      exitCode: timedOut || interrupted ? null : (res?.code ?? null),
      // an interrupted command was killed by us: its exit signal says nothing about the command
      signal: interrupted && !timedOut ? null : (res?.signal ?? null),
      stdout: out.text(),
      stderr: err.text(),
      timedOut,
      interrupted: interrupted && !timedOut,
      durationMs: Math.round(performance.now() - start),
      dropped: {stdout: out.dropped, stderr: err.dropped},
    }
  } finally {
    if (timer) clearTimeout(timer)
    opts.signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * The line run on a second channel when a command times out: every other child of this connection's
 * sshd is a session leader (sshd calls setsid for each command), so killing those sessions kills the
 * timed-out command with everything it started. Commands on one connection run one at a time here.
 */
export const REAP_OTHER_SESSIONS = 'for p in $(pgrep -P "$PPID"); do [ "$p" = "$$" ] || pkill -KILL -s "$p"; done; true'

/** Longest wait for the reap (a host that stopped answering must not hold up the report). */
const REAP_TIMEOUT_MS = 3000

async function reapOthers(conn: Connection): Promise<void> {
  let ch: ClientChannel | undefined
  let timer: NodeJS.Timeout | undefined
  const gaveUp = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      ch?.close()
      resolve()
    }, REAP_TIMEOUT_MS)
  })
  const reaped = conn.ssh.execCommand(REAP_OTHER_SESSIONS, {onChannel: (c) => (ch = c)}).then(
    () => undefined,
    // best effort: the channel close after it still ends the command for us
    () => undefined,
  )
  try {
    await Promise.race([reaped, gaveUp])
  } finally {
    clearTimeout(timer)
  }
}
