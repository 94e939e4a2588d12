/**
 * Shared set-up of the shard-move tests: a lab with 3 Postgres servers, Redis and Memcached, 16 logical
 * shards, a `moves` section with a short freeze lease, the feed app in-process, and helpers to drive the
 * real CLI, put steady write load through the app and read what each server holds.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {readdirSync, readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import pg from 'pg'
import {parse, stringify} from 'yaml'

import {appConfigFrom, type AppConfig} from '../../app/config.js'
import {loadConfig} from '../../src/config/load.js'
import {shardOfUser, schemaName} from '../../src/shards/placement.js'
import {call, CDN, initLabShards, SECRET} from '../app/helpers.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import {cli, repoRoot, runCli, withClient, type CliRun} from './helpers.js'

export const LOGICAL = 16

export interface MoveLab {
  lab: TestLab
  file: string
  config: AppConfig
  url(server: string): string
}

export async function startMoveLab(moves: Record<string, number> = {}): Promise<MoveLab> {
  const lab = await startTestLab({postgres: 3, redis: true, memcached: true})
  try {
    const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: Record<string, Record<string, unknown>>}
    const env = doc.environments.lab!
    ;(env.shards as {logical: number}).logical = LOGICAL
    env.app = {cdnBase: CDN, secret: SECRET, freezeWaitMs: 3000, mapPollMs: 200}
    env.moves = {freezeLeaseMs: 1500, ...moves}
    const file = path.join(lab.dir, 'move.yml')
    writeFileSync(file, stringify(doc))
    const config = appConfigFrom(loadConfig({flag: file}), {})
    await initLabShards(config)
    return {lab, file, config, url: (server) => config.shards.servers.find((s) => s.name === server)!.url}
  } catch (err) {
    await lab.stop()
    throw err
  }
}

/** `feedops shards ARGS --config FILE --json`, parsed. */
export async function shards(ml: MoveLab, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun & {json: any}> {
  // Generous: on a busy 2-core machine a move's copy can take minutes; a timeout would interrupt it (exit 130).
  const r = await runCli(['shards', ...args, '--config', ml.file, '--json'], {env, timeout: 400_000})
  let json: unknown
  try {
    json = JSON.parse(r.stdout)
  } catch {
    json = undefined
  }
  return {...r, json}
}

/** The CLI in the background, for tests that kill it or run a second one beside it. */
export interface BackgroundCli {
  child: ChildProcess
  stderr(): string
  /** What it printed on stdout so far (with --json: its result, once it has ended). */
  stdout(): string
  /** Resolves when stderr contains `text`; rejects when the process ends first or after timeoutMs. */
  waitFor(text: string, timeoutMs?: number): Promise<void>
  exited: Promise<number | null>
}

export function startCli(ml: MoveLab, args: string[], env: NodeJS.ProcessEnv = {}): BackgroundCli {
  const child = spawn(process.execPath, [cli, 'shards', ...args, '--config', ml.file, '--json'], {
    cwd: repoRoot,
    env: {...process.env, FEEDOPS_CONFIG: undefined, ...env},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()))
  let out = ''
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    // Generous: on a loaded 2-core machine a move can take minutes to reach a pause point.
    waitFor: (text, timeoutMs = 180_000) =>
      new Promise((resolve, reject) => {
        const timer = setInterval(() => {
          if (err.includes(text)) done(undefined)
        }, 20)
        const deadline = setTimeout(() => {
          child.kill('SIGKILL') // a CLI that never got there must not linger (paused for an hour) after the test
          done(new Error(`no "${text}" on stderr within ${timeoutMs} ms: ${err}`))
        }, timeoutMs)
        void exited.then(() => setTimeout(() => done(err.includes(text) ? undefined : new Error(`CLI exited before "${text}": ${err}`)), 50))
        const done = (e: Error | undefined) => {
          clearInterval(timer)
          clearTimeout(deadline)
          if (e) reject(e)
          else resolve()
        }
      }),
  }
}

export interface AppUser {
  id: string
  token: string
  shard: number
}

/** Creates users through the app until each of `shards` has `perShard` of them. */
export async function usersIn(appUrl: string, shardList: number[], perShard: number, tag: string): Promise<Map<number, AppUser[]>> {
  const out = new Map<number, AppUser[]>(shardList.map((s) => [s, []]))
  for (let i = 0; [...out.values()].some((l) => l.length < perShard); i++) {
    if (i > 2000) throw new Error('could not make users in every shard')
    const r = await call(appUrl, 'POST', '/users', {body: {username: `${tag}_${process.pid}_${i}`, name: `user ${i}`}})
    if (r.status !== 201) throw new Error(`POST /users: ${r.status} ${JSON.stringify(r.body)}`)
    const user = {id: r.body.user.id as string, token: r.body.token as string, shard: shardOfUser(BigInt(r.body.user.id), LOGICAL)}
    const list = out.get(user.shard)
    if (list && list.length < perShard) list.push(user)
  }
  return out
}

export interface Write {
  caption: string
  status: number
  id?: string
  startedAt: number
  endedAt: number
  ms: number
}

/**
 * Steady photo writes through the given app instances (round robin), `concurrency` at a time, until
 * stop(). Every write has a unique caption, so each can be found afterwards.
 */
export function startLoad(appUrls: string[], users: AppUser[], opts: {concurrency: number; tag: string; maxMs?: number}) {
  const writes: Write[] = []
  let stopped = false
  let n = 0
  // Bounded: a load whose test failed before stop() ends by itself, and does not spin on a stopped app.
  const until = performance.now() + (opts.maxMs ?? 300_000)
  const worker = async (w: number) => {
    while (!stopped && performance.now() < until) {
      const i = n++
      const user = users[i % users.length]!
      const caption = `${opts.tag}-${i}`
      const startedAt = performance.now()
      const r = await call(appUrls[(i + w) % appUrls.length]!, 'POST', '/photos', {
        token: user.token,
        body: {caption, s3Key: `p/${caption}.jpg`},
      }).catch(() => ({status: 0, body: undefined, ms: performance.now() - startedAt}))
      const endedAt = performance.now()
      writes.push({caption, status: r.status, id: r.body?.photo?.id, startedAt, endedAt, ms: endedAt - startedAt})
      if (r.status === 0) await new Promise((resolve) => setTimeout(resolve, 20)) // the app is not answering
    }
  }
  const running = Promise.all(Array.from({length: opts.concurrency}, (_, w) => worker(w)))
  return {
    writes,
    stop: async () => {
      stopped = true
      await running
      return writes
    },
  }
}

/** caption → how many rows carry it, in the shard's photos on that server. */
export async function captionsOn(url: string, shard: number, prefix: string): Promise<Map<string, number>> {
  return withClient(url, async (c) => {
    const r = await c.query<{caption: string; n: number}>(
      `SELECT caption, count(*)::int AS n FROM "${schemaName(shard)}".photos WHERE caption LIKE $1 GROUP BY caption`,
      [`${prefix}-%`],
    )
    return new Map(r.rows.map((x) => [x.caption, x.n]))
  })
}

export async function sql<R extends pg.QueryResultRow = any>(url: string, text: string, values: unknown[] = []): Promise<R[]> {
  return withClient(url, async (c) => (await c.query<R>(text, values)).rows)
}

/** Names of feedops_move slots, publications and subscriptions on a server. */
export async function moveObjects(url: string): Promise<string[]> {
  const rows = await sql<{name: string}>(
    url,
    `SELECT slot_name AS name FROM pg_replication_slots WHERE slot_name LIKE 'feedops_move%' OR slot_name LIKE 'pg_%_sync_%'
     UNION ALL SELECT pubname FROM pg_publication UNION ALL SELECT subname FROM pg_subscription`,
  )
  return rows.map((r) => r.name).sort()
}

export async function mapServer(ml: MoveLab, shard: number): Promise<{server: string; state: string}> {
  const [row] = await sql<{server: string; state: string}>(ml.config.shards.catalog, 'SELECT server, state FROM shard_map WHERE shard = $1', [shard])
  return row!
}

export async function waitUntil(what: string, fn: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/**
 * kill -9 of a whole Postgres server the lab started: its postmaster and every child it forked (each runs
 * in a session of its own, so the process group alone would miss them), then waits until all are gone.
 * `only`: the postmaster alone, as an operator's kill -9 of it; returns what kills the children after.
 */
export async function killServer(postmaster: number, only = false): Promise<() => Promise<void>> {
  const children = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // stat: pid (comm) state ppid …; comm may hold spaces, so split after the last ')'.
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster
      } catch {
        return false
      }
    })
    .map(Number)
  const all = [postmaster, ...children]
  const rest = async () => {
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // ended by itself meanwhile
      }
    }
  }
  for (const pid of only ? [postmaster] : all) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err // a worker that ended by itself meanwhile
    }
  }
  await waitUntil('the killed server to be gone', async () =>
    (only ? [postmaster] : all).every((pid) => {
      try {
        const state = readFileSync(`/proc/${pid}/stat`, 'utf8')
        return state.slice(state.lastIndexOf(')') + 2).startsWith('Z')
      } catch {
        return true
      }
    }),
  )
  return rest
}

/** kill -9 of one lab Postgres server by its name (pg1 also holds the catalog); returns when it is gone. */
export async function killPg(ml: MoveLab, name: string, only = false): Promise<() => Promise<void>> {
  const {readState} = await import('../../src/lab/state.js')
  return killServer(readState(ml.lab.dir)!.processes.find((p) => p.name === name)!.pid!, only)
}

/** Starts again whatever the lab lost (a killed server comes back through crash recovery). */
export async function restartLab(ml: MoveLab): Promise<void> {
  const {labUp} = await import('../../src/lab/index.js')
  await labUp({dir: ml.lab.dir})
}

/** A CLI's stderr shows no crash: no stack frame, no unhandled error event. */
export function assertNoCrash(stderr: string, what: string): void {
  if (/Unhandled 'error' event|^\s+at .+:\d+:\d+\)?$/m.test(stderr)) throw new Error(`${what} crashed with a stack trace:\n${stderr}`)
}

/**
 * How long after `t` (performance.now()) writes to the shard went unacknowledged: from `t` to the end of
 * the first write that started after it and succeeded. Infinity when none did.
 */
export function refusedAfter(writes: readonly Write[], t: number): number {
  const ok = writes.filter((w) => w.startedAt >= t && w.status === 201).sort((a, b) => a.endedAt - b.endedAt)[0]
  return ok ? ok.endedAt - t : Number.POSITIVE_INFINITY
}
