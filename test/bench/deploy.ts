/**
 * Deploy benchmark: `feedops deploy` to 12 and 48 lab hosts against an Ansible playbook and a Fabric 2 script
 * doing the same steps with the same release tarball, in one run on the same lab; then a full rolling deploy of
 * 12 hosts under a load of feed reads, likes and new photos through the NGINX nodes, with every acknowledged
 * write counted in Postgres afterwards. Prints a table, writes test/bench/results/deploy.json.
 *
 *   npm run build && node dist/test/bench/deploy.js [--sizes 12,48] [--rounds 1] [--connections 32] [--no-ansible]
 *                     [--ansible-timeout 600] [--new-runtime 24.22.1] [--no-failing]
 *
 * The timed happy-path feedops runs pass --bake 0 (the canary then passes on health.stableMs, as before bakes
 * existed), so they compare with the peers on the same work; one more row is the default (canary window and
 * bake), which is what the happy path costs by default. At 12 hosts, releases that exit 1 s, 3 s and 10 s
 * after they listen (built from a patched copy of the sources, test/support/patched-app.ts) are deployed
 * under load through NGINX with the default settings: the failed requests of each, and the time from each
 * crash (the app logs its moment) to when the deploy saw it.
 *
 * Wall time is from the command's start to its exit: every tool exits only once every host's /readyz reports
 * the new release (the bench checks each host afterwards). CPU is the command's own (user + system, with the
 * children it waited for, from /usr/bin/time), i.e. the operator machine's cost, not the hosts'.
 * The runtime is on the hosts before any timed run (the first deploy brings it); a deploy that brings a new
 * runtime as well is timed on its own row. The timed feedops deploys reuse the first deploy's bundle (no source
 * changes between them: a new release id, manifest and tarball); one more row builds it anew (`--rebuild`), as
 * a code change would. Each size gets a lab of its own (app hosts, 3 NGINX nodes, 2 Postgres
 * servers behind PgBouncer, Redis, Memcached, the cloud endpoint), stopped at the end. Each timed run starts
 * once the machine was less than 20% busy for a second (at most 20 s of waiting, logged), not in the tail of
 * the run before.
 */
import {spawn} from 'node:child_process'
import {lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync} from 'node:fs'
import {loadavg, userInfo} from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {parse, stringify} from 'yaml'

import {appConfigFrom} from '../../app/config.js'
import {loadConfig} from '../../src/config/load.js'
import {deploySchema, type DeploySettings} from '../../src/config/schema.js'
import {buildBundle} from '../../src/deploy/bundle.js'
import {ensureRuntime, feedopsCacheDir, localRuntimeNode} from '../../src/deploy/runtime.js'
import {parseBatchSpec, planBatches} from '../../src/deploy/strategy.js'
import {labPaths} from '../../src/lab/layout.js'
import {nginxNodeFiles} from '../../src/lb/nginx-conf.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import type {LoadResult} from '../support/load/process.js'
import {underLoad as withLoad} from '../support/load/run.js'
import {ansibleCommand, fabricCommand, type Command, type PeerJob} from './deploy/peers.js'
import {countWrites, preparePlan, type WriteCount} from '../support/load/writes.js'
import {BROKEN, patchedProject} from '../support/patched-app.js'
import {median, repoRoot, settle, table} from './util.js'

const {values: flags} = parseArgs({
  options: {
    sizes: {type: 'string', default: '12,48'},
    rounds: {type: 'string', default: '1'},
    connections: {type: 'string', default: '32'},
    'new-runtime': {type: 'string', default: '24.22.1'},
    'no-ansible': {type: 'boolean', default: false},
    'no-failing': {type: 'boolean', default: false},
    'ansible-timeout': {type: 'string', default: '600'},
  },
})
const sizes = flags.sizes.split(',').map(Number)
const rounds = Number(flags.rounds)
const feedops = path.join(repoRoot, 'bin/run.js')
/** Bounds every command the bench runs (Ansible at 48 hosts takes minutes). */
const COMMAND_TIMEOUT_MS = 15 * 60_000

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} (load ${loadavg()[0]!.toFixed(1)}) ${msg}\n`)
}

interface Timed {
  ms: number
  cpuSeconds: number
  stdout: string
}

/**
 * Runs a command to its end; wall time around it, CPU (user + sys) from /usr/bin/time. Throws on failure, and
 * past `timeoutMs` kills the command's whole process group (Ansible's workers and their ssh too).
 */
async function timed([cmd, args, env]: Command, opts: {cwd?: string; timeoutMs?: number} = {}): Promise<Timed> {
  const cpuFile = path.join(workDir, 'cpu.txt')
  const started = process.hrtime.bigint()
  const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', cpuFile, cmd, ...args], {
    env: {...process.env, ...env},
    cwd: opts.cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)))
  const limit = opts.timeoutMs ?? COMMAND_TIMEOUT_MS
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), limit)
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  clearTimeout(timer)
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  if (code !== 0) {
    const why = code === null ? `killed after ${(limit / 1000).toFixed(0)} s` : `exit ${code}`
    throw new Error(`${path.basename(cmd)} failed (${why}): ${stderr.slice(-1500)} ${failedHosts(stdout) ?? stdout.slice(-1500)}`)
  }
  const [user, sys] = readFileSync(cpuFile, 'utf8').trim().split(/\s+/).slice(-2).map(Number)
  return {ms, cpuSeconds: user! + sys!, stdout}
}

let workDir = ''

interface LabContext {
  lab: TestLab
  configFile: string
  deploy: DeploySettings
  appPort: number
  hosts: {name: string; address: string; deployPath: string}[]
}

/** The deploy settings the lab config gives (defaults where it says nothing), with ~ as each host's home. */
function labContext(lab: TestLab, configFile: string): LabContext {
  const loaded = loadConfig({flag: configFile})
  const deploy = deploySchema.parse(loaded.env.deploy ?? {})
  const appPort = deploy.health.port ?? (loaded.env.app?.port as number | undefined) ?? 8080
  const hosts = lab.layout.hosts.map((h) => ({
    name: h.name,
    address: h.address,
    deployPath: deploy.path.replace(/^~(?=$|\/)/, labPaths.hostRoot(lab.dir, h.name)),
  }))
  return {lab, configFile, deploy, appPort, hosts}
}

/** The release each host's /readyz reports now. */
async function reportedReleases(ctx: LabContext): Promise<(string | undefined)[]> {
  return Promise.all(
    ctx.hosts.map(async (h) => {
      const res = await fetch(`http://${h.address}:${ctx.appPort}/readyz`).catch(() => null)
      if (res?.status !== 200) return undefined
      return ((await res.json()) as {release?: string}).release
    }),
  )
}

/** Every host must serve `release` now; a tool that exited before that did not finish its job. */
async function assertAllOn(ctx: LabContext, release: string, tool: string): Promise<void> {
  const reported = await reportedReleases(ctx)
  const off = ctx.hosts.flatMap((h, i) => (reported[i] === release ? [] : [`${h.name} (${reported[i] ?? 'not ready'})`]))
  if (off.length > 0) throw new Error(`${tool} exited, but ${off.length} hosts do not report ${release}: ${off.slice(0, 5).join(', ')}`)
}

/** The links feedops made inside a release folder it deployed (the runtime's node, …), for the peers to make too. */
function sharedLinks(ctx: LabContext, release: string): {src: string; dest: string}[] {
  const dir = path.join(ctx.hosts[0]!.deployPath, 'releases', release)
  return readdirSync(dir)
    .filter((f) => lstatSync(path.join(dir, f)).isSymbolicLink())
    .map((f) => ({src: readlinkSync(path.join(dir, f)), dest: f}))
}

function feedopsDeploy(ctx: LabContext, extra: string[] = [], cli = feedops): Command {
  return ['node', [cli, 'deploy', '--config', ctx.configFile, '--json', ...extra]]
}

/** Where a feedops deploy's time went, from its --json result (ms; phases as the median over hosts). */
interface FeedopsTimes {
  buildMs: number
  /** The command's own measure, from when the deploy starts (after loading, the config and connecting) to the summary. */
  durationMs: number
  /** On the same clock, to the first step on a host: preflight, lock, build. */
  firstHostMs: number
  phases: Record<string, number>
}

interface Row {
  hosts: number
  tool: string
  ms: number
  cpuSeconds: number
  release: string
  feedops?: FeedopsTimes
  /** A peer that failed or ran out of time: ms is then how long it ran. */
  error?: string
}

interface DeployJson {
  release: string
  ok: boolean
  buildMs: number
  durationMs: number
  hosts: {host: string; phases: {phase: string; startMs: number; ms: number}[]}[]
}

function feedopsTimes(r: DeployJson): FeedopsTimes {
  const byPhase = new Map<string, number[]>()
  for (const h of r.hosts) for (const p of h.phases) byPhase.set(p.phase, [...(byPhase.get(p.phase) ?? []), p.ms])
  return {
    buildMs: r.buildMs,
    durationMs: r.durationMs,
    firstHostMs: Math.min(...r.hosts.flatMap((h) => h.phases.map((p) => p.startMs))),
    phases: Object.fromEntries([...byPhase].map(([phase, ms]) => [phase, median(ms)])),
  }
}

/** From a failed `deploy --json`: why it stopped, and each host that did not end up updated, with its error. */
function failedHosts(stdout: string): string | undefined {
  try {
    const r = JSON.parse(stdout) as {stopped: string | null; hosts: {host: string; outcome: string; error: string | null}[]}
    const bad = r.hosts.filter((h) => h.error || (h.outcome !== 'updated' && h.outcome !== 'not-started'))
    return `stopped: ${r.stopped}; ${bad.map((h) => `${h.host} ${h.outcome}: ${h.error ?? ''}`).join('; ')}`
  } catch {
    return undefined
  }
}

const REBUILT = 'feedops (default ramp), bundle built anew (--rebuild: as after a code change)'
const BAKED = 'feedops (default ramp, default canary window and bake)'

/** A feedops deploy; one that fails (exit 1: a gate failed, every host rolled back) is a row with its error. */
async function feedopsRun(ctx: LabContext, tool: string, extra: string[] = []): Promise<Row> {
  const started = performance.now()
  try {
    const t = await timed(feedopsDeploy(ctx, extra), {cwd: ctx.lab.dir})
    const result = JSON.parse(t.stdout) as DeployJson
    await assertAllOn(ctx, result.release, tool)
    return {hosts: ctx.hosts.length, tool, ms: t.ms, cpuSeconds: t.cpuSeconds, release: result.release, feedops: feedopsTimes(result)}
  } catch (err) {
    log(`${tool} at ${ctx.hosts.length} hosts: ${(err as Error).message.slice(0, 800)}`)
    return {hosts: ctx.hosts.length, tool, ms: performance.now() - started, cpuSeconds: NaN, release: '', error: (err as Error).message.slice(0, 300)}
  }
}

/** A fresh release (built the way feedops builds it, not timed) deployed by a peer. */
async function peerRun(ctx: LabContext, tool: 'ansible' | 'fabric', links: {src: string; dest: string}[]): Promise<Row> {
  // The release feedops would ship, compile cache included (made by the same runtime), built before the clock starts.
  const runtime = await ensureRuntime(ctx.deploy.runtime, feedopsCacheDir())
  const bundle = await buildBundle({cacheDir: path.join(workDir, 'bundles'), runtime: ctx.deploy.runtime, runtimeNode: () => localRuntimeNode(runtime)})
  if (!bundle.manifest.compileCache) throw new Error('the peers must get the release feedops ships, with its compile cache')
  const job: PeerJob = {
    dir: workDir,
    hosts: ctx.hosts,
    user: userInfo().username,
    port: 2222,
    key: labPaths.clientKey(ctx.lab.dir),
    knownHosts: labPaths.knownHosts(ctx.lab.dir),
    tarball: bundle.tarball,
    release: bundle.manifest.id,
    restart: ctx.deploy.restart,
    sharedLinks: links,
    readyPort: ctx.appPort,
    batches: planBatches(ctx.hosts, parseBatchSpec(ctx.deploy.batch)).map((b) => b.length),
    timeoutSeconds: Math.ceil(ctx.deploy.health.timeout),
  }
  const started = performance.now()
  try {
    const t = await timed(tool === 'ansible' ? ansibleCommand(job) : fabricCommand(job), {
      timeoutMs: tool === 'ansible' ? Number(flags['ansible-timeout']) * 1000 : COMMAND_TIMEOUT_MS,
    })
    await assertAllOn(ctx, bundle.manifest.id, tool)
    return {hosts: ctx.hosts.length, tool, ms: t.ms, cpuSeconds: t.cpuSeconds, release: bundle.manifest.id}
  } catch (err) {
    // Reported as a lower bound; the next deploy starts from whatever state the hosts are in.
    log(`${tool} at ${ctx.hosts.length} hosts: ${(err as Error).message.slice(0, 500)}`)
    return {hosts: ctx.hosts.length, tool, ms: performance.now() - started, cpuSeconds: NaN, release: bundle.manifest.id, error: (err as Error).message.slice(0, 300)}
  }
}

/** The lab config with deploy.runtime changed, for the new-runtime deploy. */
function withRuntime(ctx: LabContext, version: string): string {
  const doc = parse(readFileSync(ctx.configFile, 'utf8')) as {environments: Record<string, {deploy?: Record<string, unknown>}>}
  const env = Object.values(doc.environments)[0]!
  env.deploy = {...env.deploy, runtime: version}
  const file = path.join(ctx.lab.dir, `feedops-runtime-${version}.yml`)
  writeFileSync(file, stringify(doc))
  return file
}

interface LoadReport {
  deploy: Row
  load: Omit<LoadResult, 'ackedLikes' | 'ackedPhotos'>
  writes: WriteCount
  /** What the NGINX nodes logged about their upstreams during the load (why a request failed). */
  nginxErrors: string[]
}

function nginxErrorLog(lab: TestLab, node: string): string {
  return nginxNodeFiles(labPaths.nginxDir(lab.dir, node)).errorLog
}

/** The lines about upstreams each NGINX node's error log gained since `sizes` (bytes per node) were taken. */
function nginxUpstreamErrors(lab: TestLab, sizes: Map<string, number>): string[] {
  return lab.layout.nginx.flatMap((n) => {
    return readFileSync(nginxErrorLog(lab, n.name))
      .subarray(sizes.get(n.name) ?? 0)
      .toString('utf8')
      .split('\n')
      .filter((l) => /upstream/.test(l))
      .map((l) => `${n.name}: ${l}`)
  })
}

/** A full rolling deploy (default ramp) under load through every NGINX node, then the writes counted. */
async function deployUnderLoad(ctx: LabContext): Promise<LoadReport> {
  const urls = ctx.lab.layout.nginx.map((n) => `http://${n.address}:${n.httpPort}`)
  const plan = await preparePlan(urls[0]!, urls, {users: 40, photosEach: 5})
  const logSizes = new Map(ctx.lab.layout.nginx.map((n) => [n.name, statSync(nginxErrorLog(ctx.lab, n.name)).size]))
  const {value: deploy, load: result} = await withLoad(
    plan,
    {planFile: path.join(workDir, 'load-plan.json'), connections: Number(flags.connections), warmupMs: 3000, cooldownMs: 2000, maxSeconds: 180},
    () => feedopsRun(ctx, 'feedops under load'),
  )
  const config = appConfigFrom(loadConfig({flag: ctx.configFile}))
  const writes = await countWrites(config.shards, plan, result)
  const {ackedLikes: _l, ackedPhotos: _p, ...load} = result
  return {deploy, load, writes, nginxErrors: nginxUpstreamErrors(ctx.lab, logSizes)}
}

interface FailingReport {
  crashAfterMs: number
  exitCode: number | null
  stopped: string | null
  /** Hosts that ran the release before it was caught, and those marked bad. */
  switched: number
  markedBad: string[]
  deployMs: number
  load: Omit<LoadResult, 'ackedLikes' | 'ackedPhotos'>
  writes: WriteCount
  /** Per host that failed: ms from its app's crash (as its log says) to when the deploy saw it. */
  detectMs: {host: string; ms: number; how: string}[]
  /** Every host serves the release from before, afterwards. */
  recovered: boolean
}

/** The latest crash moment a host's app logged before `at` (ms since 1970), from `crashing in N ms: <epoch>` lines. */
function crashBefore(ctx: LabContext, host: string, at: number): number | undefined {
  const h = ctx.hosts.find((x) => x.name === host)!
  const log = readFileSync(path.join(h.deployPath, 'shared', 'log', 'app.log'), 'utf8')
  const moments = [...log.matchAll(/crashing in \d+ ms: (\d+)/g)].map((m) => Number(m[1])).filter((t) => t <= at)
  return moments.length > 0 ? Math.max(...moments) : undefined
}

/**
 * Releases that exit 1 s, 3 s and 10 s after they listen, each deployed (default settings) under load through
 * every NGINX node: failed requests, writes, and the time from each crash to the deploy seeing it.
 */
async function failingReleases(ctx: LabContext): Promise<FailingReport[]> {
  const copy = patchedProject()
  const urls = ctx.lab.layout.nginx.map((n) => `http://${n.address}:${n.httpPort}`)
  const out: FailingReport[] = []
  try {
    for (const crashAfterMs of [1000, 3000, 10_000]) {
      copy.reset()
      const [file, find, replace] = BROKEN.exitsAfter(crashAfterMs)
      copy.patch(file, find, replace)
      const before = await reportedReleases(ctx)
      const plan = await preparePlan(urls[0]!, urls, {users: 20, photosEach: 3})
      await settle()
      log(`12 hosts: a release that exits ${crashAfterMs / 1000} s after it listens, under load`)
      let exitCode: number | null = null
      let stdout = ''
      let deployMs = 0
      const {load: result} = await withLoad(
        plan,
        {planFile: path.join(workDir, 'load-plan.json'), connections: Number(flags.connections), warmupMs: 2000, cooldownMs: 2000, maxSeconds: 180},
        async () => {
          const t0 = performance.now()
          const [cmd, args] = feedopsDeploy(ctx, [], copy.bin)
          const child = spawn(cmd, args, {cwd: ctx.lab.dir, stdio: ['ignore', 'pipe', 'ignore']})
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
          exitCode = await new Promise<number | null>((resolve) => child.once('close', resolve))
          deployMs = performance.now() - t0
        },
      )
      const r = JSON.parse(stdout) as {stopped: string | null; markedBad: string[]; hosts: {host: string; outcome: string; failedAt?: string; error: string | null}[]}
      const detectMs = r.hosts
        .filter((h) => h.failedAt)
        .flatMap((h) => {
          const seen = Date.parse(h.failedAt!)
          const crash = crashBefore(ctx, h.host, seen)
          return crash === undefined ? [] : [{host: h.host, ms: seen - crash, how: /stable window/.test(h.error ?? '') ? 'canary window' : 're-check'}]
        })
      const writes = await countWrites(appConfigFrom(loadConfig({flag: ctx.configFile})).shards, plan, result)
      const {ackedLikes: _l, ackedPhotos: _p, ...load} = result
      const after = await reportedReleases(ctx)
      out.push({
        crashAfterMs,
        exitCode,
        stopped: r.stopped,
        switched: r.hosts.filter((h) => h.outcome !== 'not-started').length,
        markedBad: r.markedBad,
        deployMs,
        load,
        writes,
        detectMs,
        recovered: after.every((x, i) => x === before[i]),
      })
    }
  } finally {
    copy.remove()
  }
  return out
}

async function benchSize(n: number): Promise<{rows: Row[]; underLoad?: LoadReport; failing?: FailingReport[]}> {
  const lab = await startTestLab({hosts: n, nginx: 3, postgres: 2, pgbouncer: true, shards: true, redis: true, memcached: true, cloud: true})
  workDir = path.join(lab.dir, 'bench')
  mkdirSync(workDir, {recursive: true})
  try {
    const ctx = labContext(lab, lab.configFile)
    const rows: Row[] = []
    log(`${n} hosts: first deploy (runtime and app to fresh hosts)`)
    rows.push(await feedopsRun(ctx, 'feedops, first deploy (runtime uploaded, nothing running before)', ['--bake', '0']))
    const links = sharedLinks(ctx, rows[0]!.release)
    const tools: [string, () => Promise<Row>][] = [
      ['feedops', () => feedopsRun(ctx, 'feedops (default ramp)', ['--bake', '0'])],
      ['feedops 100%', () => feedopsRun(ctx, 'feedops --batch 100%', ['--batch', '100%', '--bake', '0'])],
      // The runs above reuse the first deploy's bundle (no source changed in between); a code change is this.
      ['feedops rebuilt', () => feedopsRun(ctx, REBUILT, ['--rebuild', '--bake', '0'])],
      // What the happy path costs by default: the canary's window and the bake on top.
      ['feedops baked', () => feedopsRun(ctx, BAKED)],
      ['fabric', () => peerRun(ctx, 'fabric', links)],
      ...(flags['no-ansible'] ? [] : [['ansible', () => peerRun(ctx, 'ansible', links)] as [string, () => Promise<Row>]]),
    ]
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < tools.length; i++) {
        const [name, go] = tools[(i + r) % tools.length]!
        const quiet = await settle()
        log(`${n} hosts, round ${r + 1}/${rounds}: ${name} (machine ${quiet.busyPct.toFixed(0)}% busy after ${(quiet.waitedMs / 1000).toFixed(1)} s of waiting)`)
        rows.push(await go())
      }
    }
    // The runtime change is timed once, on the first size.
    if (n === sizes[0]) {
      log(`${n} hosts: a deploy that brings runtime ${flags['new-runtime']} too`)
      await ensureRuntime(flags['new-runtime'], feedopsCacheDir()) // fetched from the registry once, not timed
      await settle()
      const runtimeCtx = {...ctx, configFile: withRuntime(ctx, flags['new-runtime'])}
      rows.push(await feedopsRun(runtimeCtx, `feedops, another runtime (${flags["new-runtime"]}, not on the hosts yet)`, ['--bake', '0']))
      // Back to the configured runtime, so the load deploy below is an ordinary app release.
      await settle()
      rows.push(await feedopsRun(ctx, `feedops, back to runtime ${ctx.deploy.runtime} (default ramp)`, ['--bake', '0']))
    }
    let underLoad: LoadReport | undefined
    let failing: FailingReport[] | undefined
    if (n === 12) {
      log(`${n} hosts: rolling deploy under load`)
      underLoad = await deployUnderLoad(ctx)
      if (!flags['no-failing']) failing = await failingReleases(ctx)
    }
    return {rows, underLoad, ...(failing ? {failing} : {})}
  } finally {
    await lab.stop()
  }
}

// The lab shares the machine's cores with whatever else runs: record how busy it was.
const loadBefore = loadavg()[0]!
const all: Row[] = []
let underLoad: LoadReport | undefined
let failing: FailingReport[] | undefined
for (const n of sizes) {
  const r = await benchSize(n)
  all.push(...r.rows)
  underLoad ??= r.underLoad
  failing ??= r.failing
}

const medianOf = (hosts: number, tool: string, of: (r: Row) => number = (r) => r.ms) =>
  median(all.filter((r) => r.hosts === hosts && r.tool === tool).map(of))
const sansBuild = (r: Row) => r.ms - (r.feedops?.buildMs ?? 0)
const ratios: Record<string, number> = {}
const tableRows: string[][] = []
for (const n of sizes) {
  const ramp = medianOf(n, 'feedops (default ramp)')
  const full = medianOf(n, 'feedops --batch 100%')
  const fabric = medianOf(n, 'fabric')
  ratios[`feedopsVsAnsible@${n}`] = ramp / medianOf(n, 'ansible')
  ratios[`feedops100VsFabric@${n}`] = full / fabric
  ratios[`feedopsRampVsFabric@${n}`] = ramp / fabric
  ratios[`feedopsRebuiltRampVsFabric@${n}`] = medianOf(n, REBUILT) / fabric
  // The peers get the tarball ready-made; feedops builds it inside the timed command.
  ratios[`feedops100VsFabricWithoutBuild@${n}`] = medianOf(n, 'feedops --batch 100%', sansBuild) / fabric
  ratios[`feedopsRampVsFabricWithoutBuild@${n}`] = medianOf(n, 'feedops (default ramp)', sansBuild) / fabric
  for (const r of all.filter((x) => x.hosts === n)) {
    const vs = r.tool === 'ansible' ? ramp / r.ms : r.tool === 'fabric' ? full / r.ms : NaN
    const ratio = Number.isNaN(vs) ? '' : `${r.error ? '< ' : ''}${vs.toFixed(2)}`
    tableRows.push([String(n), r.error ? `${r.tool} (did not finish)` : r.tool, `${r.error ? '> ' : ''}${(r.ms / 1000).toFixed(2)}`, Number.isNaN(r.cpuSeconds) ? '' : r.cpuSeconds.toFixed(2), ratio])
  }
}
const s1 = (ms: number | undefined) => (ms === undefined ? '' : (ms / 1000).toFixed(2))
const loadAfter = loadavg()[0]!
console.log(table(['hosts', 'tool', 'wall s', 'CPU s', 'feedops ÷ tool'], tableRows))
console.log(`\nmachine load (1-minute average): ${loadBefore.toFixed(1)} at the start, ${loadAfter.toFixed(1)} at the end`)
console.log(
  '\n' +
    sizes
      .map(
        (n) =>
          `${n} hosts: default ramp ÷ Ansible ${ratios[`feedopsVsAnsible@${n}`]!.toFixed(2)} (goal ≤ 0.10), ` +
          `--batch 100% ÷ Fabric ${ratios[`feedops100VsFabric@${n}`]!.toFixed(2)} (goal ≤ 1.0; ${ratios[`feedops100VsFabricWithoutBuild@${n}`]!.toFixed(2)} without the build), ` +
          `default ramp ÷ Fabric ${ratios[`feedopsRampVsFabric@${n}`]!.toFixed(2)} (goal ≤ 1.5; ${ratios[`feedopsRampVsFabricWithoutBuild@${n}`]!.toFixed(2)} without the build; ` +
          `${ratios[`feedopsRebuiltRampVsFabric@${n}`]!.toFixed(2)} with the bundle built anew)`,
      )
      .join('\n'),
)
console.log(
  '\nwhere the feedops runs spent their time (s; per-host steps: median over hosts)\n' +
    table(
      ['hosts', 'run', 'wall', 'start-up, inventory, exit', 'to first host step', 'of it build', 'upload', 'unpack', 'restart', 'health gate'],
      all
        .filter((r) => r.feedops && !r.error)
        .map((r) => {
          const f = r.feedops!
          return [String(r.hosts), r.tool, s1(r.ms), s1(r.ms - f.durationMs), s1(f.firstHostMs), s1(f.buildMs), s1(f.phases.upload), s1(f.phases.unpack), s1(f.phases.restart), s1(f.phases.health)]
        }),
    ),
)
if (underLoad) {
  const {load, writes, deploy, nginxErrors} = underLoad
  console.log(
    '\n' +
      table(
        ['rolling deploy of 12 hosts under load', 'value'],
        [
          ['deploy wall s', s1(deploy.ms)],
          ['load s', load.seconds.toFixed(1)],
          ['requests', String(load.requests)],
          ['non-2xx', String(load.non2xx)],
          ['socket errors', String(load.socketErrors)],
          ['timeouts', String(load.timeouts)],
          ['acknowledged likes', String(writes.ackedLikes)],
          ['acknowledged new photos', String(writes.ackedPhotos)],
          ['writes lost', String(writes.lost)],
          ['writes applied twice', String(writes.appliedTwice)],
          ['applied, not acknowledged', String(writes.appliedUnacked)],
        ],
      ),
  )
  if (load.failures.length > 0) console.log('\nfailed requests:\n' + load.failures.map((f) => `  +${f.ms} ms ${f.what}`).join('\n'))
  if (nginxErrors.length > 0) console.log('\nNGINX error log, upstream lines during the load:\n' + nginxErrors.slice(0, 20).map((l) => `  ${l}`).join('\n'))
}
if (failing) {
  console.log(
    '\nreleases that crash, each deployed to 12 hosts (default settings) under load through NGINX\n' +
      table(
        ['crash after listen', 'exit', 'stopped', 'hosts switched', 'marked bad', 'deploy s', 'requests', 'failed requests', 'writes lost', 'applied twice', 'crash seen after (ms, per host)', 'recovered'],
        failing.map((f) => [
          `${f.crashAfterMs / 1000} s`,
          String(f.exitCode),
          String(f.stopped),
          String(f.switched),
          String(f.markedBad.length),
          s1(f.deployMs),
          String(f.load.requests),
          String(f.load.non2xx + f.load.socketErrors + f.load.timeouts),
          String(f.writes.lost),
          String(f.writes.appliedTwice),
          f.detectMs.map((d) => `${d.host} ${d.ms} (${d.how})`).join(', '),
          f.recovered ? 'yes' : 'NO',
        ]),
      ),
  )
  const worst = Math.max(...failing.flatMap((f) => f.detectMs.map((d) => d.ms)))
  console.log(`\nslowest detection of a crash: ${worst} ms (goal ≤ 1500)`)
}
const out = path.join(repoRoot, 'test/bench/results')
mkdirSync(out, {recursive: true})
writeFileSync(path.join(out, 'deploy.json'), JSON.stringify({sizes, rounds, loadAverage: {start: loadBefore, end: loadAfter}, runs: all, ratios, underLoad, failing}, null, 2) + '\n')
