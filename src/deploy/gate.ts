import type {Duplex} from 'node:stream'

import type {Connection} from '../ssh/pool.js'
import {CONFIG_FAILURE} from './failure.js'

/**
 * The health gate of a deploy: a restarted host passes once its health URL answers 200 reporting the
 * release id (an old process still running never does), and, for the canary, still does from the same
 * process `stableMs` later. The gate asks from this machine, through the host's pooled SSH connection
 * (a direct-tcpip channel to the app's port on the host, as `ssh -L` opens): no process starts on the host
 * and no port has to be open between here and there. The loop is a plain function over `ask`, for tests.
 */

export interface HealthAnswer {
  /** HTTP status, 0 when nothing answered. */
  status: number
  release?: string
  pid?: number
  error?: string
  /** From a 503 of /readyz: the dependencies that did not answer (`servers.pg1: connection refused`). */
  failing?: string[]
}

export interface GateOutcome {
  ok: boolean
  ms: number
  last: HealthAnswer
  /** The pid of the first good answer (the process the stable window and the re-checks want). */
  pid?: number
}

const good = (a: HealthAnswer, want: string) => a.status === 200 && a.release === want

/**
 * Waits for a good answer (200, the wanted release), then, with `stableMs`, asks again every `stablePollMs`
 * (default 1 s) for that long: every answer must be good and from the same pid (a crash and a restart by the
 * supervisor is a new pid).
 */
export async function gate(
  ask: () => Promise<HealthAnswer>,
  opts: {want: string; timeoutMs: number; stableMs: number; pollMs?: number; stablePollMs?: number; sleep?: (ms: number) => Promise<void>; now?: () => number},
): Promise<GateOutcome> {
  const now = opts.now ?? Date.now
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
  const started = now()
  let last: HealthAnswer = {status: 0, error: 'not asked yet'}
  while (now() - started < opts.timeoutMs) {
    last = await ask()
    if (good(last, opts.want)) {
      const pid = last.pid
      const until = now() + opts.stableMs
      while (now() < until) {
        await sleep(Math.min(opts.stablePollMs ?? 1000, Math.max(0, until - now())))
        const again = await askAgain(ask, await ask(), (a) => good(a, opts.want) && a.pid === pid, {sleep})
        if (!good(again, opts.want) || again.pid !== pid) return {ok: false, ms: now() - started, last: again, ...(pid !== undefined ? {pid} : {})}
      }
      return {ok: true, ms: now() - started, last, ...(pid !== undefined ? {pid} : {})}
    }
    await sleep(opts.pollMs ?? 100)
  }
  return {ok: false, ms: now() - started, last}
}

/**
 * An answer that is not what was wanted but says nothing definite (no answer, or a status without a pid
 * or release that differs) is asked again 250 ms later, twice more when it timed out (a slow host, not a
 * dead one): one slow answer on a loaded host must not fail a host, while a dead process (refused at once)
 * is still seen within half a second more. A different pid or release is never asked again.
 */
export async function askAgain(
  ask: () => Promise<HealthAnswer>,
  first: HealthAnswer,
  ok: (a: HealthAnswer) => boolean,
  opts: {sleep?: (ms: number) => Promise<void>; definite?: (a: HealthAnswer) => boolean} = {},
): Promise<HealthAnswer> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
  const definite = opts.definite ?? ((a: HealthAnswer) => a.status !== 0 && (a.pid !== undefined || a.release !== undefined) && a.status === 200)
  let a = first
  for (let tries = 0; !ok(a) && !definite(a) && tries < (/within \d+ ms/.test(a.error ?? '') ? 3 : 1); tries++) {
    await sleep(250)
    a = await ask()
  }
  return a
}

/** Why a gate failed, in one line. A new release that runs but cannot reach what its config names is a config failure (src/deploy/failure.ts). */
export function gateFailure(url: string, want: string, o: GateOutcome): string {
  if (o.last.release === want && o.last.failing && o.last.failing.length > 0) {
    return `${CONFIG_FAILURE}: ${url} did not report release ${want} with 200 within ${(o.ms / 1000).toFixed(1)} s: it runs, but cannot reach ${o.last.failing.join(', ')}`
  }
  const seen = o.last.status === 0 ? `no answer (${o.last.error})` : `${o.last.status}${o.last.release ? ` from release ${o.last.release}` : ''}${o.last.pid ? ` (pid ${o.last.pid})` : ''}`
  if (o.pid !== undefined) return `${url} reported release ${want} from pid ${o.pid}, then within its stable window: ${seen}`
  return `${url} did not report release ${want} with 200 within ${(o.ms / 1000).toFixed(1)} s: last answer ${seen}`
}

/**
 * One GET over a stream to the app (HTTP/1.0, so the app closes it after the answer): the status and, from
 * the JSON body, the release and pid. Anything else is status 0 with the reason.
 */
export async function askOver(open: () => Promise<Duplex>, host: string, path: string, timeoutMs = 2000): Promise<HealthAnswer> {
  let stream: Duplex | undefined
  let timeout: NodeJS.Timeout | undefined
  const timer = new Promise<HealthAnswer>((resolve) => {
    timeout = setTimeout(() => resolve({status: 0, error: `no answer within ${timeoutMs} ms`}), timeoutMs)
  })
  const asked = (async (): Promise<HealthAnswer> => {
    stream = await open()
    const chunks: Buffer[] = []
    const done = new Promise<void>((resolve, reject) => {
      stream!.on('data', (c: Buffer) => chunks.push(c))
      stream!.once('end', resolve)
      stream!.once('close', resolve)
      stream!.once('error', reject)
    })
    // Written, not ended: a half-closed connection makes Node's HTTP server drop a request still in its
    // handler (httpAllowHalfOpen is off). HTTP/1.0: the app closes the connection after its answer.
    stream.write(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\nAccept: application/json\r\n\r\n`)
    await done
    return parseAnswer(Buffer.concat(chunks).toString('utf8'))
  })().catch((err: Error) => ({status: 0, error: err.message}))
  try {
    return await Promise.race([asked, timer])
  } finally {
    clearTimeout(timeout)
    stream?.destroy()
  }
}

/**
 * One GET of `path` on the app of a host, from here, through a direct-tcpip channel of its pooled SSH
 * connection (the deploy's gate, `feedops releases`). An sshd that refuses forwarding (AllowTcpForwarding no)
 * is an error that says so.
 */
export async function askThrough(conn: Connection, port: number, path: string): Promise<HealthAnswer> {
  const {address, name} = conn.host
  const answer = await askOver(() => conn.ssh.forwardOut('127.0.0.1', 0, address, port), address, path)
  if (answer.error && /prohibited/i.test(answer.error)) {
    throw new Error(`${name}'s sshd refuses TCP forwarding, which feedops uses to ask the app for its health: allow it (AllowTcpForwarding local)`)
  }
  return answer
}

export function parseAnswer(raw: string): HealthAnswer {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw)
  if (!m) return {status: 0, error: raw ? `not an HTTP answer: ${raw.slice(0, 60)}` : 'the connection closed without an answer'}
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4)
  let parsed: {release?: unknown; pid?: unknown; checks?: unknown} = {}
  try {
    parsed = JSON.parse(body) as typeof parsed
  } catch {
    // a status without a JSON body: only the status counts
  }
  return {
    status: Number(m[1]),
    ...(typeof parsed.release === 'string' ? {release: parsed.release} : {}),
    ...(typeof parsed.pid === 'number' ? {pid: parsed.pid} : {}),
    ...failingChecks(parsed.checks),
  }
}

/** /readyz's checks ({catalog: 'ok', redis: '…', servers: {pg1: '…'}}) that are not ok, as `key: reason`. */
function failingChecks(checks: unknown): {failing?: string[]} {
  if (!checks || typeof checks !== 'object') return {}
  const failing: string[] = []
  for (const [k, v] of Object.entries(checks as Record<string, unknown>)) {
    if (k === 'map') continue // the map loads from the catalog: its failure is the catalog's
    if (typeof v === 'string' && v !== 'ok') failing.push(`${k}: ${v.slice(0, 120)}`)
    if (v && typeof v === 'object') for (const [n, w] of Object.entries(v as Record<string, unknown>)) if (typeof w === 'string' && w !== 'ok') failing.push(`${k}.${n}: ${w.slice(0, 120)}`)
  }
  return failing.length > 0 ? {failing} : {}
}
