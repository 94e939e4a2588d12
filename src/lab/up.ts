import {chmodSync, mkdirSync, statSync} from 'node:fs'
import path from 'node:path'

import {ExitCode, UserError, errorText} from '../errors.js'
import {componentById, labComponents} from './components/index.js'
import type {DesiredProcess, LabComponent, LabContext} from './components/types.js'
import {labShards, writeLabConfig} from './config-writer.js'
import {labLayout, MAX_HOSTS, MAX_NGINX, MAX_POSTGRES} from './layout.js'
import {acquireLabLock} from './lock.js'
import {checkPackages, installPackages, type PackageNeed} from './packages.js'
import {listening, spawnDetached, stopProcess, waitForPort, type StopOutcome} from './process.js'
import {readState, recordKey, writeState, type LabState, type ProcessRecord} from './state.js'
import {isRecordRunning, statusOf, type LabStatus} from './status.js'

export interface LabOptions {
  dir: string
  /** The x in 127.x.y.z; 0 for the user's lab, 20+ for tests. Default: the lab's current net, else 0. */
  net?: number
  /** Default: the lab's current size, else 12 hosts, 3 NGINX nodes and 2 Postgres servers. */
  hosts?: number
  nginx?: number
  postgres?: number
  /** Run apt-get for missing packages instead of failing. */
  install?: boolean
  /** Default: as the lab was, else true. */
  redis?: boolean
  memcached?: boolean
  cloud?: boolean
  /** PgBouncer in front of each Postgres server. Default: as the lab was, else true. */
  pgbouncer?: boolean
  /** Create the shard catalog and schemas when the catalog is missing. Default: as the lab was, else true. */
  shards?: boolean
  /** Look for this program instead of the usual one, per Debian package (tests of the missing-package path). */
  binaries?: Record<string, string>
}

export type Progress = (msg: string) => void

interface Planned {
  component: LabComponent
  process: DesiredProcess
}

/**
 * Brings the lab in `dir` to the requested shape. Idempotent: processes that run and match are
 * kept, dead or missing ones are started, ones no longer wanted are stopped. Everything is checked
 * (options, packages, ports) before any process is touched.
 */
export async function labUp(opts: LabOptions, progress: Progress = () => {}): Promise<LabStatus> {
  const dir = path.resolve(opts.dir)
  const prev = readState(dir)
  const net = opts.net ?? prev?.net ?? 0
  const hosts = opts.hosts ?? prev?.hosts ?? 12
  const postgres = opts.postgres ?? prev?.postgres ?? 2
  const nginx = opts.nginx ?? (prev ? (prev.nginx ?? 0) : 3)
  const shards = opts.shards ?? (prev ? (prev.shards ?? false) : true)
  checkCount('net', net, 0, 255)
  checkCount('hosts', hosts, 0, MAX_HOSTS)
  checkCount('nginx', nginx, 0, MAX_NGINX)
  checkCount('postgres', postgres, 0, MAX_POSTGRES)
  const ctx: LabContext = {
    dir,
    layout: labLayout(net, hosts, postgres, nginx),
    redis: opts.redis ?? prev?.redis ?? true,
    memcached: opts.memcached ?? prev?.memcached ?? true,
    cloud: opts.cloud ?? prev?.cloud ?? true,
    pgbouncer: opts.pgbouncer ?? (prev ? (prev.pgbouncer ?? false) : true),
    isRoot: process.getuid?.() === 0,
    progress,
  }

  const needs: PackageNeed[] = labComponents
    .flatMap((c) => c.packages(ctx))
    .map((n) => ({...n, binary: opts.binaries?.[n.package] ?? n.binary}))
  if (opts.install) await installPackages(needs, progress)
  else checkPackages(needs)
  for (const c of labComponents) c.check?.(ctx)

  mkdirSync(dir, {recursive: true})
  makeTraversable(dir)
  const release = acquireLabLock(dir)
  try {
    const state: LabState = {
      version: 1,
      dir,
      net,
      hosts,
      nginx,
      postgres,
      pgbouncer: ctx.pgbouncer,
      shards,
      redis: ctx.redis,
      memcached: ctx.memcached,
      cloud: ctx.cloud,
      updatedAt: '',
      processes: prev?.processes ?? [],
    }
    const planned: Planned[] = labComponents.flatMap((component) => component.desired(ctx).map((process) => ({component, process})))
    const wanted = new Map(planned.map((p) => [recordKey(p.process), p.process]))

    // 1. Stop what runs but is no longer wanted (fewer hosts) or was started differently.
    const stale = state.processes.filter((r) => {
      const want = wanted.get(recordKey(r))
      return isRecordRunning(r) && (!want || want.argv.join('\0') !== r.argv.join('\0'))
    })
    if (stale.length > 0) {
      progress(`Stopping ${stale.length} process${stale.length > 1 ? 'es' : ''} no longer wanted: ${names(stale)}`)
      await Promise.all(stale.map((r) => stopRecord(dir, r)))
    }
    state.processes = state.processes.filter((r) => wanted.has(recordKey(r)))
    writeState(dir, state)

    // 2. What must start, and is each of its ports free?
    const toStart = planned.filter((p) => {
      const r = state.processes.find((x) => recordKey(x) === recordKey(p.process))
      return !r || !isRecordRunning(r)
    })
    const busy = (
      await Promise.all(toStart.map(async (p) => ((await listening(p.process.address, p.process.port)) ? p.process : undefined)))
    ).filter((p): p is DesiredProcess => p !== undefined)
    if (busy.length > 0) {
      throw new UserError(
        `${busy.map((p) => `${p.address}:${p.port} (${p.name})`).join(', ')} ${busy.length > 1 ? 'are' : 'is'} already in use by a process this lab did not start.`,
        {fix: 'Stop that process, or run this lab on another net (--net) and dir (--dir).', exitCode: ExitCode.failed},
      )
    }

    // 3. Per component, all components at once: files/keys/data dirs, then its processes (each
    // pid recorded as soon as it exists), then what needs them serving (databases…).
    progress(toStart.length > 0 ? `Starting ${describe(toStart)}` : `All ${planned.length} processes already run`)
    const failures: string[] = []
    await Promise.all(
      labComponents.map(async (c) => {
        const mine = planned.filter((p) => p.component === c).map((p) => p.process)
        const starting = toStart.filter((p) => p.component === c).map((p) => p.process)
        try {
          await c.prepare?.(ctx, starting)
        } catch (err) {
          failures.push(`${c.title}: ${errorText(err)}`)
          return
        }
        const before = failures.length
        await Promise.all(starting.map((p) => startOne(dir, state, p, failures)))
        if (failures.length > before || mine.length === 0) return
        if (starting.length > 0) progress(`${c.title}: ${mine.length} up`)
        await c.ready?.(ctx, mine).catch((err: unknown) => {
          failures.push(`${c.title}: ${errorText(err)}`)
        })
      }),
    )
    state.processes.sort(byLayoutOrder(planned))
    writeState(dir, state)
    // 4. What needs several parts serving (the ELB: HAProxy and the cloud endpoint), once all are.
    for (const c of labComponents) {
      if (failures.length > 0) break
      await c.settle?.(ctx).catch((err: unknown) => {
        failures.push(`${c.title}: ${errorText(err)}`)
      })
    }
    if (failures.length > 0) {
      throw new UserError(`The lab did not come up: ${failures.slice(0, 3).join('; ')}${failures.length > 3 ? ` (and ${failures.length - 3} more)` : ''}`, {
        fix: `Read the logs in ${path.join(dir, 'logs')}, fix the cause, and run \`feedops lab up\` again.`,
        exitCode: ExitCode.failed,
      })
    }

    writeLabConfig({dir, layout: ctx.layout, redis: ctx.redis, memcached: ctx.memcached, cloud: ctx.cloud, pgbouncer: ctx.pgbouncer})
    if (shards) await ensureShards(ctx, progress)
    return statusOf(dir, state)
  } finally {
    release()
  }
}

/**
 * A lab a deploy can serve a feed from needs the catalog and the logical shards: create them (the
 * library's `shards init`, over the direct URLs) when the catalog is missing or a run was cut short.
 */
async function ensureShards(ctx: LabContext, progress: Progress): Promise<void> {
  const settings = labShards(ctx.layout)
  if (!settings) return
  const [{ServerPools}, {readShardMap}, {initShards}] = await Promise.all([
    import('../shards/pools.js'),
    import('../shards/catalog.js'),
    import('../shards/init.js'),
  ])
  const pools = new ServerPools(settings, {applicationName: 'feedops-lab'})
  try {
    const map = await readShardMap(pools.catalog).catch((err: unknown) => {
      if (err instanceof UserError) return undefined // no catalog yet
      throw err
    })
    // A complete catalog stays as it is, whatever its logical count (`shards init --logical` may have set it).
    if (map && map.logical > 0 && map.shards.length === map.logical) return
    progress(`Shards: creating the catalog and ${settings.logical} logical shards`)
    const result = await initShards(pools, settings)
    if (!result.complete) {
      const failed = result.servers.filter((s) => s.error).map((s) => `${s.server}: ${s.error}`)
      throw new UserError(`The lab's shards were not all created (${failed.join('; ') || 'incomplete'}).`, {
        fix: 'Run `feedops shards init` to finish them.',
        exitCode: ExitCode.failed,
      })
    }
  } finally {
    await pools.end()
  }
}

/** Spawns one process, records its pid at once, and waits for its port; on failure stops it again. */
async function startOne(dir: string, state: LabState, p: DesiredProcess, failures: string[]): Promise<void> {
  const key = recordKey(p)
  const record: ProcessRecord = {
    component: p.component,
    name: p.name,
    address: p.address,
    port: p.port,
    argv: p.argv,
    match: p.match,
    logFile: p.logFile,
    pid: null,
    startTime: null,
    startedAt: null,
  }
  try {
    const id = spawnDetached({argv: p.argv, logFile: p.logFile, match: p.match, env: p.env, cwd: p.cwd, uid: p.uid, gid: p.gid})
    Object.assign(record, {pid: id.pid, startTime: id.startTime, startedAt: new Date().toISOString()})
    state.processes = [...state.processes.filter((r) => recordKey(r) !== key), record]
    writeState(dir, state)
    await waitForPort(p.address, p.port, {process: id, logFile: p.logFile, what: p.name})
  } catch (err) {
    failures.push(errorText(err))
    if (record.pid !== null) await stopRecord(dir, record)
    writeState(dir, state)
  }
}

/** Stops one recorded process (the component's way, else TERM then KILL) and forgets its pid. */
export async function stopRecord(dir: string, r: ProcessRecord): Promise<StopOutcome> {
  if (r.pid === null || r.startTime === null) return 'not-running'
  const id = {pid: r.pid, startTime: r.startTime, match: r.match}
  const component = componentById(r.component)
  const outcome = component?.stop ? await component.stop(dir, {...r, ...id}) : await stopProcess(id)
  r.pid = null
  r.startTime = null
  return outcome
}

function checkCount(what: string, n: number, min: number, max: number): void {
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UserError(`${what} must be a whole number from ${min} to ${max} (got ${n}).`, {
      fix: `Pass --${what} between ${min} and ${max}.`,
    })
  }
}

/** Servers that drop root (Postgres) must be able to reach their data dirs inside the lab dir. */
function makeTraversable(dir: string): void {
  const mode = statSync(dir).mode
  if ((mode & 0o011) !== 0o011) chmodSync(dir, mode | 0o011)
}

function names(records: {name: string}[]): string {
  const all = records.map((r) => r.name)
  return all.length > 6 ? `${all.slice(0, 6).join(', ')}…` : all.join(', ')
}

function describe(planned: Planned[]): string {
  const counts = new Map<string, number>()
  for (const p of planned) counts.set(p.component.title, (counts.get(p.component.title) ?? 0) + 1)
  return [...counts].map(([title, n]) => `${title} (${n})`).join(', ')
}

function byLayoutOrder(planned: Planned[]): (a: ProcessRecord, b: ProcessRecord) => number {
  const order = new Map(planned.map((p, i) => [recordKey(p.process), i]))
  return (a, b) => (order.get(recordKey(a)) ?? 1e9) - (order.get(recordKey(b)) ?? 1e9)
}
