import type {ClientChannel} from 'ssh2'

import type {Connection} from './pool.js'

export interface ExecOptions {
  /** Kill the command after this many ms (0 or undefined: no limit). */
  timeoutMs?: number
  /** Closes the channel when aborted (Ctrl-C). */
  signal?: AbortSignal
  stdin?: string
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
}

const DEFAULT_KEEP = 16 << 20

class Collector {
  private chunks: Buffer[] = []
  private size = 0
  truncated = false
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    if (this.size >= this.limit) {
      this.truncated = true
      return
    }
    const part = this.size + chunk.length > this.limit ? chunk.subarray(0, this.limit - this.size) : chunk
    if (part !== chunk) this.truncated = true
    this.chunks.push(part)
    this.size += part.length
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8') + (this.truncated ? '\n[output truncated]\n' : '')
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

  const stop = () => {
    if (!channel) return
    try {
      channel.signal('KILL')
    } catch {}
    channel.close()
    // If the server never confirms the close, do not wait for it forever.
    setTimeout(() => forceDone?.(), 2000).unref()
  }
  const onAbort = () => {
    interrupted = true
    stop()
  }
  if (opts.signal?.aborted) {
    return {exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, interrupted: true, durationMs: 0}
  }
  opts.signal?.addEventListener('abort', onAbort, {once: true})

  try {
    const running = conn.ssh.execCommand(line, {
      noTrim: true,
      ...(opts.stdin !== undefined ? {stdin: opts.stdin} : {}),
      onChannel: (ch) => {
        channel = ch
        if (opts.timeoutMs && opts.timeoutMs > 0) {
          timer = setTimeout(() => {
            timedOut = true
            stop()
          }, opts.timeoutMs)
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
    const forced = new Promise<null>((resolve) => (forceDone = () => resolve(null)))
    const res = await Promise.race([running, forced])
    return {
      exitCode: timedOut || interrupted ? null : (res?.code ?? null),
      signal: res?.signal ?? null,
      stdout: out.text(),
      stderr: err.text(),
      timedOut,
      interrupted: interrupted && !timedOut,
      durationMs: Math.round(performance.now() - start),
    }
  } finally {
    if (timer) clearTimeout(timer)
    opts.signal?.removeEventListener('abort', onAbort)
  }
}
