#!/usr/bin/env node
/**
 * The process manager carried in every release, for hosts without systemd (the lab):
 *
 *   releases/<id>/node releases/<id>/pm.mjs start|stop|restart|status
 *
 * It runs the app of the release it sits in (its real path, never `current`), with that release's config,
 * shared/config/<id>/feedops.json and the variables of shared/config/<id>/app.env (mode 0600), logging to shared/log/app.log; the pid file
 * shared/app.pid records pid, start time and command line, so a reused pid is never signalled. start waits
 * (up to $FEEDOPS_START_TIMEOUT seconds, default 30) until the app says on its ready pipe that it listens.
 * restart starts the new process beside the old one and then stops the old one. stop sends SIGTERM (the app
 * drains) and KILL after $FEEDOPS_STOP_TIMEOUT seconds (default 15). The deploy's health gate asks the app
 * itself, from the operator's machine (src/deploy/gate.ts).
 */
import {spawn} from 'node:child_process'
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {ADDRESS_IN_USE_EXIT} from '../../app/server.js'
import {isRunning, readProc, type ProcessIdentity} from '../lab/process.js'

const release = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(release, '..', '..')
const shared = path.join(root, 'shared')
const pidFile = path.join(shared, 'app.pid')
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

interface PidRecord extends ProcessIdentity {
  release: string
  /** While a restart hands over: the process being stopped. */
  previous?: PidRecord
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function readPid(): PidRecord | undefined {
  try {
    return JSON.parse(readFileSync(pidFile, 'utf8')) as PidRecord
  } catch {
    return undefined
  }
}

function running(): PidRecord | undefined {
  const r = readPid()
  return r && isRunning(r) ? r : undefined
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

function manifest(): {id: string; fault?: string} {
  return JSON.parse(readFileSync(path.join(release, 'manifest.json'), 'utf8')) as {id: string; fault?: string}
}

/** How long a new process has to say it listens (its dependencies answered), in seconds. */
const startTimeoutMs = () => Number(process.env.FEEDOPS_START_TIMEOUT ?? 30) * 1000

type Launch = {ok: true; rec: PidRecord} | {ok: false; code: number | null; why: string}

/**
 * Starts the app of this release, detached, and waits until it reports on its ready pipe (fd 3) that it
 * listens. A process that exits or stays silent past the start timeout is not recorded (and is killed).
 */
async function launch(): Promise<Launch> {
  mkdirSync(path.join(shared, 'log'), {recursive: true})
  const log = openSync(path.join(shared, 'log', 'app.log'), 'a')
  const app = path.join(release, 'app.mjs')
  const child = spawn(path.join(release, 'node'), [app, '--config', configFile], {
    detached: true,
    stdio: ['ignore', log, log, 'pipe'],
    cwd: release,
    env: {...process.env, ...envFile(envFilePath), FEEDOPS_READY_FD: '3'},
  })
  closeSync(log)
  const pid = child.pid
  if (pid === undefined) return {ok: false, code: null, why: 'the app did not start'}
  const ready = child.stdio[3]!
  const outcome = await new Promise<Launch>((resolve) => {
    const timer = setTimeout(() => resolve({ok: false, code: null, why: `it did not listen within ${startTimeoutMs() / 1000} s`}), startTimeoutMs())
    let said = ''
    ready.on('data', (d: Buffer) => {
      said += d.toString()
      if (!said.includes('ready')) return
      clearTimeout(timer)
      resolve({ok: true, rec: {pid, startTime: readProc(pid)?.startTime ?? 0, match: [app], release}})
    })
    ready.on('error', () => undefined)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ok: false, code, why: `it exited with code ${code} before listening (see shared/log/app.log)`})
    })
  })
  ready.destroy()
  child.unref()
  if (!outcome.ok && child.exitCode === null) child.kill('SIGKILL')
  return outcome
}

function writePid(rec: PidRecord): void {
  writeFileSync(`${pidFile}.tmp`, JSON.stringify(rec))
  renameSync(`${pidFile}.tmp`, pidFile)
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
  writePid(l.rec)
  process.stdout.write(`started: pid ${l.rec.pid} (${path.basename(release)})\n`)
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
  // Test-only fault: a restart that leaves the old process running (the gate must catch it).
  if (old && manifest().fault === 'keep-old') {
    process.stdout.write(`already running: pid ${old.pid} (${path.basename(old.release)})\n`)
    return 0
  }
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
  process.stdout.write(`started: pid ${l.rec.pid} (${path.basename(release)}), listening after ${listening - t0} ms\n`)
  // Both are recorded until the old one is gone, so a stop or restart cut short here misses neither.
  const stopping = olds.filter((p) => isRunning(p))
  writePid(stopping[0] ? {...l.rec, previous: stopping[0]} : l.rec)
  for (const p of stopping) await stopProcess(p)
  writePid(l.rec)
  if (stopping.length > 0) process.stdout.write(`pid ${stopping.map((p) => p.pid).join(', ')} gone after ${Date.now() - listening} ms more\n`)
  return 0
}

/** SIGTERM (the app drains), then KILL after $FEEDOPS_STOP_TIMEOUT seconds (default 15). */
async function stopProcess(r: PidRecord): Promise<void> {
  const bound = Number(process.env.FEEDOPS_STOP_TIMEOUT ?? 15) * 1000
  if (!isRunning(r)) return
  process.kill(r.pid, 'SIGTERM')
  const until = Date.now() + bound
  while (isRunning(r) && Date.now() < until) await sleep(25)
  if (isRunning(r)) {
    process.kill(r.pid, 'SIGKILL')
    while (isRunning(r)) await sleep(10)
    process.stdout.write(`killed: pid ${r.pid} after ${bound} ms\n`)
  } else {
    process.stdout.write(`stopped: pid ${r.pid}\n`)
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
  process.stdout.write(`${JSON.stringify(r ? {running: true, pid: r.pid, release: path.basename(r.release)} : {running: false})}\n`)
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
