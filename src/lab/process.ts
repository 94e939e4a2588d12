import {spawn} from 'node:child_process'
import {closeSync, mkdirSync, openSync, readFileSync, readSync, fstatSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

/**
 * Long-lived lab processes: spawned detached (own session, logs to a file) so they outlive the
 * `feedops lab up` that started them, and stopped later by pid. A pid alone is not an identity
 * (pids get reused), so a process is recorded with its start time and strings its command line
 * must contain, and nothing is signalled unless all of them still match.
 */

export interface ProcessIdentity {
  pid: number
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22). */
  startTime: number
  /** Substrings the process's /proc/<pid>/cmdline (NULs read as spaces) must contain. */
  match: string[]
}

export interface SpawnSpec {
  argv: string[]
  logFile: string
  /** Strings that identify this process in its command line later (it may rewrite its title). */
  match: string[]
  cwd?: string
  env?: NodeJS.ProcessEnv
  uid?: number
  gid?: number
}

export interface ProcInfo {
  cmdline: string
  state: string
  startTime: number
}

export function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Field 2 (comm) may contain spaces and parentheses: parse after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()
    return {cmdline, state: rest[0] ?? '?', startTime: Number(rest[19])}
  } catch {
    return undefined
  }
}

/** True when the pid exists, is not a zombie, and is still the process that was recorded. */
export function isRunning(id: ProcessIdentity): boolean {
  return isRecordedProcess(readProc(id.pid), id)
}

/**
 * The decision behind isRunning, on what /proc said. A process being killed frees its memory first, and
 * from then on its command line reads empty, but it holds its files and listening ports until it is a
 * zombie: whoever waits for it to stop before reusing its port must still see it running. Its pid and
 * start time still identify it (a reused pid has another start time).
 */
export function isRecordedProcess(info: ProcInfo | undefined, id: ProcessIdentity): boolean {
  if (!info || info.state === 'Z' || info.state === 'X') return false
  if (info.startTime !== id.startTime) return false
  if (info.cmdline === '') return true // exiting
  return id.match.every((m) => info.cmdline.includes(m))
}

export function spawnDetached(spec: SpawnSpec): ProcessIdentity {
  mkdirSync(path.dirname(spec.logFile), {recursive: true})
  const fd = openSync(spec.logFile, 'a')
  try {
    const [cmd, ...args] = spec.argv
    const child = spawn(cmd!, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      ...(spec.uid === undefined ? {} : {uid: spec.uid}),
      ...(spec.gid === undefined ? {} : {gid: spec.gid}),
    })
    child.on('error', () => {}) // reported below through the missing pid
    if (child.pid === undefined) throw new Error(`Could not start ${cmd}: no such program or permission denied.`)
    child.unref()
    const info = readProc(child.pid)
    return {pid: child.pid, startTime: info?.startTime ?? -1, match: spec.match}
  } finally {
    closeSync(fd)
  }
}

/** One TCP connect attempt. */
export function portAccepts(host: string, port: number, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({host, port})
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/**
 * IPv4 sockets in LISTEN state, as "a.b.c.d:port", read from /proc/net/tcp; undefined when that
 * file cannot be read. Cheaper than connecting, and it does not make sshd fork a session for
 * nothing. One read serves every waiter polling within the same few milliseconds.
 */
let listenCache: {at: number; set: Set<string> | undefined} | undefined
export function listeningSockets(maxAgeMs = 0): Set<string> | undefined {
  const now = Date.now()
  if (listenCache && now - listenCache.at < maxAgeMs) return listenCache.set
  let set: Set<string> | undefined
  try {
    set = new Set()
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f[3] !== '0A' || !f[1]) continue // 0A = LISTEN
      const [hexAddr, hexPort] = f[1].split(':')
      const n = Number.parseInt(hexAddr!, 16) // little-endian on the usual hosts
      set.add(`${n & 255}.${(n >>> 8) & 255}.${(n >>> 16) & 255}.${n >>> 24}:${Number.parseInt(hexPort!, 16)}`)
    }
  } catch {
    set = undefined
  }
  listenCache = {at: now, set}
  return set
}

/**
 * Something listens on host:port (or on the wildcard address, which blocks binding it too).
 * maxAgeMs lets many pollers share one read of /proc/net/tcp; a one-off check reads it fresh.
 */
export async function listening(host: string, port: number, maxAgeMs = 0): Promise<boolean> {
  const set = listeningSockets(maxAgeMs)
  if (set) return set.has(`${host}:${port}`) || set.has(`0.0.0.0:${port}`)
  return portAccepts(host, port)
}

/**
 * Waits until host:port listens. Fails early, with the end of the log, when the process dies
 * first (a bind error, a bad config).
 */
export async function waitForPort(
  host: string,
  port: number,
  opts: {process?: ProcessIdentity; logFile?: string; timeoutMs?: number; what?: string} = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000)
  const what = opts.what ?? `${host}:${port}`
  for (;;) {
    if (await listening(host, port, 15)) {
      if (!opts.process || isRunning(opts.process)) return
    }
    if (opts.process && !isRunning(opts.process)) {
      throw new Error(`${what} exited before it listened on ${host}:${port}.${logHint(opts.logFile)}`)
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} did not listen on ${host}:${port} in time.${logHint(opts.logFile)}`)
    }
    await sleep(40)
  }
}

function logHint(logFile: string | undefined): string {
  if (!logFile) return ''
  const tail = tailOf(logFile, 600).trim()
  return tail ? ` Last log lines (${logFile}): ${tail.split('\n').slice(-4).join(' | ')}` : ` See ${logFile}.`
}

export function tailOf(file: string, bytes: number): string {
  try {
    const fd = openSync(file, 'r')
    try {
      const size = fstatSync(fd).size
      const start = Math.max(0, size - bytes)
      const buf = Buffer.alloc(size - start)
      readSync(fd, buf, 0, buf.length, start)
      return buf.toString('utf8')
    } finally {
      closeSync(fd)
    }
  } catch {
    return ''
  }
}

export async function waitUntilGone(id: ProcessIdentity, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (isRunning(id)) {
    if (Date.now() > deadline) return false
    await sleep(25)
  }
  return true
}

export type StopOutcome = 'stopped' | 'killed' | 'not-running'

/**
 * Stops a recorded process: checks it is still the same process, sends `signal` (TERM), waits,
 * then KILL. Only that pid is signalled, never a group or a name.
 */
export async function stopProcess(
  id: ProcessIdentity,
  opts: {signal?: NodeJS.Signals; timeoutMs?: number} = {},
): Promise<StopOutcome> {
  if (!isRunning(id)) return 'not-running'
  try {
    process.kill(id.pid, opts.signal ?? 'SIGTERM')
  } catch {
    return 'not-running'
  }
  if (await waitUntilGone(id, opts.timeoutMs ?? 5000)) return 'stopped'
  if (isRunning(id)) {
    try {
      process.kill(id.pid, 'SIGKILL')
    } catch {
      // exited in between
    }
  }
  await waitUntilGone(id, 2000)
  return 'killed'
}
