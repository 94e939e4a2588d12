#!/usr/bin/env node
/**
 * The process manager carried in every release, for hosts without systemd (the lab):
 *
 *   releases/<id>/node releases/<id>/pm.mjs start|stop|restart|status
 *
 * It runs the app of the release it sits in (its real path, never `current`), with that release's own
 * config, shared/config/<id>/feedops.json and the variables of shared/config/<id>/app.env (mode 0600), logging to shared/log/app.log, under a supervisor: a
 * small process of its own (`pm.mjs supervise <app>`) that starts the app again when it exits with a
 * failure, with backoff and a burst limit (src/deploy/restart-policy.ts, as systemd's Restart=on-failure
 * with StartLimitBurst). Every restart is a new pid, so a deploy's re-checks see a crash; the supervisor
 * writes its state (the app's pid, restarts since start, the last exit) to shared/run/supervisor-<pid>.json.
 *
 * The pid file shared/app.pid records the supervisor (pid, start time and command line, so a reused pid is
 * never signalled). start waits (up to $FEEDOPS_START_TIMEOUT seconds, default 30) until the app says on
 * its ready pipe that it listens. restart starts the new supervisor and app beside the old ones and then
 * stops the old ones. stop sends SIGTERM (the supervisor passes it on; the app drains) and KILL after
 * $FEEDOPS_STOP_TIMEOUT seconds (default 15). The deploy's health gate asks the app itself, from the
 * operator's machine (src/deploy/gate.ts).
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {ADDRESS_IN_USE_EXIT} from '../../app/server.js'
import {isRunning, readProc, type ProcessIdentity} from '../lab/process.js'
import {afterExit, exitText} from './restart-policy.js'

const self = fileURLToPath(import.meta.url)
const release = path.dirname(self)
const root = path.resolve(release, '..', '..')
const shared = path.join(root, 'shared')
const pidFile = path.join(shared, 'app.pid')
const runDir = path.join(shared, 'run')
/**
 * This release's own copy of the config (shared/config/<id>/, written by the deploy that shipped it), so a
 * switch back runs with the config it ran with before; a release shipped before copies were kept uses shared/.
 */
const configDir = (() => {
  const own = path.join(shared, 'config', path.basename(release))
  return existsSync(path.join(own, 'feedops.json')) ? own : undefined
})()
const configFile = configDir ? path.join(configDir, 'feedops.json') : path.join(shared, 'feedops.yml')
const envFilePath = path.join(configDir ?? shared, 'app.env')
const appEntry = path.join(release, 'app.mjs')

interface PidRecord extends ProcessIdentity {
  release: string
  /** While a restart hands over: the process being stopped. */
  previous?: PidRecord
}

/** What a supervisor says about itself (shared/run/supervisor-<pid>.json). */
export interface SupervisorState {
  pid: number
  release: string
  /** The app's pid now (null between an exit and the restart). */
  app: number | null
  /** Restarts since the supervisor started the app the first time. */
  restarts: number
  since: string
  lastExit?: {at: string; how: string}
  /** The supervisor stopped restarting (burst limit): why. */
  gaveUp?: string
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const stateFile = (supervisor: number) => path.join(runDir, `supervisor-${supervisor}.json`)

function readPid(): PidRecord | undefined {
  try {
    return JSON.parse(readFileSync(pidFile, 'utf8')) as PidRecord
  } catch {
    return undefined
  }
}

function readState(pid: number): SupervisorState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(pid), 'utf8')) as SupervisorState
  } catch {
    return undefined
  }
}

function running(): PidRecord | undefined {
  const r = readPid()
  return r && isRunning(r) ? r : undefined
}

function writeAtomic(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text)
  renameSync(`${file}.tmp`, file)
}

/** KEY=VALUE lines (systemd's EnvironmentFile format, no quoting). */
function envFile(file: string): Record<string, string> {
  if (!existsSync(file)) return {}
  const vars: Record<string, string> = {}
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim())
    if (m) vars[m[1]!] = m[2]!
  }
  return vars
}

/** How long a new process has to say it listens (its dependencies answered), in seconds. */
const startTimeoutMs = () => Number(process.env.FEEDOPS_START_TIMEOUT ?? 30) * 1000
const stopTimeoutMs = () => Number(process.env.FEEDOPS_STOP_TIMEOUT ?? 15) * 1000

/** A child that reports `ready` on its fd 3 (the app, or a supervisor passing the app's word on). */
function whenReady(child: ChildProcess, timeoutMs: number): Promise<{ok: true; pid: number} | {ok: false; code: number | null; why: string}> {
  const ready = child.stdio[3]!
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ok: false, code: null, why: `it did not listen within ${timeoutMs / 1000} s`}), timeoutMs)
    let said = ''
    ready.on('data', (d: Buffer) => {
      said += d.toString()
      const m = /ready (\d+)/.exec(said)
      if (!m) return
      clearTimeout(timer)
      resolve({ok: true, pid: Number(m[1])})
    })
    ready.on('error', () => undefined)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ok: false, code, why: `it exited with code ${code} before listening (see shared/log/app.log)`})
    })
  })
}

type Launch = {ok: true; rec: PidRecord; app: number} | {ok: false; code: number | null; why: string}

/**
 * Starts a supervisor for the app of this release, detached, and waits until it reports (on its ready pipe,
 * fd 3) that the app listens. A supervisor that exits or stays silent past the start timeout is not
 * recorded (and is killed).
 */
async function launch(): Promise<Launch> {
  mkdirSync(path.join(shared, 'log'), {recursive: true})
  const log = openSync(path.join(shared, 'log', 'app.log'), 'a')
  const child = spawn(path.join(release, 'node'), [self, 'supervise', appEntry], {
    detached: true,
    stdio: ['ignore', log, log, 'pipe'],
    cwd: release,
    env: process.env,
  })
  closeSync(log)
  const pid = child.pid
  if (pid === undefined) return {ok: false, code: null, why: 'the app did not start'}
  const outcome = await whenReady(child, startTimeoutMs())
  child.stdio[3]!.destroy()
  child.unref()
  if (!outcome.ok) {
    if (child.exitCode === null) child.kill('SIGKILL')
    return outcome
  }
  return {ok: true, rec: {pid, startTime: readProc(pid)?.startTime ?? 0, match: [self, 'supervise'], release}, app: outcome.pid}
}

async function start(): Promise<number> {
  const r = running()
  if (r) {
    process.stdout.write(`already running: pid ${r.pid} (${path.basename(r.release)})\n`)
    return 0
  }
  const l = await launch()
  if (!l.ok) {
    process.stderr.write(`the app of ${path.basename(release)} did not start: ${l.why}\n`)
    return 1
  }
  writeAtomic(pidFile, JSON.stringify(l.rec))
  process.stdout.write(`started: pid ${l.app} (${path.basename(release)}), supervised by pid ${l.rec.pid}\n`)
  return 0
}

/**
 * The new process starts beside the old one (the app shares its port, SO_REUSEPORT) and the old one is
 * stopped only once the new one listens: the port never closes, so no connect is refused and no request
 * waits on a host with nothing running. A new process that fails to start leaves the old one serving.
 */
async function restart(): Promise<number> {
  // What runs now: the recorded process, and the one a restart cut short was still stopping.
  const rec = readPid()
  const olds = [rec, rec?.previous].filter((p): p is PidRecord => p !== undefined && isRunning(p))
  const old = olds[0]
  const t0 = Date.now()
  let l = await launch()
  if (!l.ok && l.code === ADDRESS_IN_USE_EXIT && old) {
    // The old process does not share its port (a release from before SO_REUSEPORT): stop it first.
    for (const p of olds) await stopProcess(p)
    l = await launch()
  }
  if (!l.ok) {
    process.stderr.write(`the app of ${path.basename(release)} did not start${old && isRunning(old) ? ` (pid ${old.pid} still serves)` : ''}: ${l.why}\n`)
    return 1
  }
  const listening = Date.now()
  process.stdout.write(`started: pid ${l.app} (${path.basename(release)}), supervised by pid ${l.rec.pid}, listening after ${listening - t0} ms\n`)
  // Both are recorded until the old one is gone, so a stop or restart cut short here misses neither.
  const stopping = olds.filter((p) => isRunning(p))
  writeAtomic(pidFile, JSON.stringify(stopping[0] ? {...l.rec, previous: stopping[0]} : l.rec))
  for (const p of stopping) await stopProcess(p)
  writeAtomic(pidFile, JSON.stringify(l.rec))
  if (stopping.length > 0) process.stdout.write(`pid ${stopping.map((p) => p.pid).join(', ')} gone after ${Date.now() - listening} ms more\n`)
  return 0
}

/**
 * SIGTERM (a supervisor passes it on and stops restarting; the app drains), then KILL after
 * $FEEDOPS_STOP_TIMEOUT seconds (default 15), of the supervisor and of the app it ran.
 */
async function stopProcess(r: PidRecord): Promise<void> {
  const bound = stopTimeoutMs()
  if (!isRunning(r)) return
  const app = readState(r.pid)?.app
  process.kill(r.pid, 'SIGTERM')
  // A supervisor kills its app itself at the bound; a little more for it to say so and exit.
  const until = Date.now() + bound + 1000
  while (isRunning(r) && Date.now() < until) await sleep(25)
  if (isRunning(r)) {
    process.kill(r.pid, 'SIGKILL')
    if (app) killQuietly(app)
    while (isRunning(r)) await sleep(10)
    process.stdout.write(`killed: pid ${r.pid} after ${bound} ms\n`)
  } else {
    process.stdout.write(`stopped: pid ${r.pid}\n`)
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // gone already
  }
}

async function stop(): Promise<void> {
  const r = readPid()
  const live = [r, r?.previous].filter((p): p is PidRecord => p !== undefined && isRunning(p))
  if (live.length === 0) process.stdout.write('not running\n')
  for (const p of live) await stopProcess(p)
  rmSync(pidFile, {force: true})
}

function status(): void {
  const r = running()
  const s = r ? readState(r.pid) : undefined
  const out = r ? {running: true, pid: r.pid, release: path.basename(r.release), app: s?.app ?? null, restarts: s?.restarts ?? 0, ...(s?.gaveUp ? {gaveUp: s.gaveUp} : {})} : {running: false}
  process.stdout.write(`${JSON.stringify(out)}\n`)
}

/**
 * `pm.mjs supervise <app>`: runs the app and starts it again after a failed exit (restart-policy.ts). Tells
 * whoever started it (fd 3) once the app first listens; an app that exits before that is not restarted (its
 * start failed: the deploy's gate reports it). SIGTERM: passed on, no more restarts, exit when the app has.
 */
async function supervise(): Promise<number> {
  const tell = (text: string) => process.stdout.write(`pm[${process.pid}] ${new Date().toISOString()} ${text}\n`)
  const env = {...process.env, ...envFile(envFilePath), FEEDOPS_READY_FD: '3'}
  mkdirSync(runDir, {recursive: true})
  const state: SupervisorState = {pid: process.pid, release: path.basename(release), app: null, restarts: 0, since: new Date().toISOString()}
  const save = () => writeAtomic(stateFile(process.pid), JSON.stringify(state))
  let child: ChildProcess | undefined
  let stopping = false
  let wake = () => {}
  const onStop = () => {
    if (stopping) return
    stopping = true
    wake()
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const kill = setTimeout(() => child?.kill('SIGKILL'), stopTimeoutMs())
      kill.unref()
    }
  }
  process.on('SIGTERM', onStop)
  process.on('SIGINT', onStop)
  let toldReady = false
  const exits: number[] = []
  try {
    for (;;) {
      const c = spawn(path.join(release, 'node'), [appEntry, '--config', configFile], {stdio: ['ignore', 'inherit', 'inherit', 'pipe'], cwd: release, env})
      child = c
      state.app = c.pid ?? null
      save()
      const exited = new Promise<{code: number | null; signal: string | null}>((resolve) => c.once('exit', (code, signal) => resolve({code, signal})))
      if (!toldReady) {
        const ready = await whenReady(c, startTimeoutMs())
        if (!ready.ok) {
          if (c.exitCode === null) c.kill('SIGKILL')
          return 1
        }
        try {
          writeSync(3, `ready ${ready.pid}\n`)
          closeSync(3)
        } catch {
          // the starter gave up waiting
        }
        toldReady = true
      } else {
        const pipe = c.stdio[3] as NodeJS.ReadableStream | null
        pipe?.on('error', () => undefined)
        pipe?.resume()
      }
      const exit = await exited
      state.app = null
      if (stopping) return 0
      const now = Date.now()
      const decision = afterExit(exits, now, exit)
      exits.push(now)
      state.lastExit = {at: new Date(now).toISOString(), how: exitText(exit)}
      if (!decision.restart) {
        state.gaveUp = decision.why
        save()
        tell(`the app (pid ${c.pid}) exited with ${exitText(exit)}; not restarting it: ${decision.why}`)
        return 1
      }
      save()
      tell(`the app (pid ${c.pid}) exited with ${exitText(exit)}; restarting it in ${decision.delayMs} ms`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, decision.delayMs)
        wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
      if (stopping) return 0
      state.restarts++
    }
  } finally {
    // The state of a supervisor that gave up stays, so `releases` can say why; a stopped one's goes.
    if (!state.gaveUp) rmSync(stateFile(process.pid), {force: true})
  }
}

async function main(): Promise<number> {
  const [cmd] = process.argv.slice(2)
  switch (cmd) {
    case 'start':
      return start()
    case 'stop':
      await stop()
      return 0
    case 'restart':
      return restart()
    case 'status':
      status()
      return 0
    case 'supervise':
      return supervise()
    default:
      process.stderr.write('Usage: pm.mjs start|stop|restart|status\n')
      return 2
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`pm: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  },
)
