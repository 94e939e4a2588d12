/**
 * ELB rotation benchmark, one lab, one run: 3 app hosts running the deployed feed app, 10 NGINX nodes, HAProxy as
 * the lab ELB (the Classic load balancer feed-lab and the target group feed-lab-tg, both over every node),
 * Postgres behind PgBouncer, Redis, Memcached. Prints three tables, writes test/bench/results/lb.json.
 *
 *   npm run build && node dist/test/bench/lb.js [--interval 1] [--passes 5] [--connections 16] [--skip-elb-check]
 *
 * 1. Detection. nginx of one node is stopped while `lb watch --interval 1` rotates the target group and the
 *    Classic ELB's own check runs with AWS's defaults (interval 30 s, unhealthy threshold 2, timeout 5 s):
 *    the time from the stop to feedops's DeregisterTargets (the cloud endpoint's request log) and to the ELB
 *    reporting the node OutOfService (polled every 250 ms), and their ratio. Goal: feedops ≤ K × interval + 1 s.
 * 2. One pass. `lb rotate` over the 10 nodes (nothing to do), CLI start included, wall time of each run. Goal < 1.5 s.
 * 3. No failed request through the ELB front (127.N.0.1:8000) under a steady bounded load of feed reads, likes and
 *    new photos from a second process (test/support/load), while (a) a node's nginx is stopped (its in-flight
 *    requests may fail: that is all), rotated out, started, rotated back; (b) a node is drained by hand and
 *    restored; (c) the app is deployed (full rolling deploy) while `lb watch` runs: nothing may be rotated out;
 *    (d) nginx is reloaded node by node through drain/restore (`play nginx-reload`). Each reports requests,
 *    non-2xx, socket errors, and the acknowledged writes found in Postgres exactly once.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {loadavg, tmpdir} from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {ConfigureHealthCheckCommand, DescribeInstanceHealthCommand, ElasticLoadBalancingClient} from '@aws-sdk/client-elastic-load-balancing'
import {parse, stringify} from 'yaml'

import {appConfigFrom} from '../../app/config.js'
import {loadConfig} from '../../src/config/load.js'
import {readRequestLog} from '../../src/lab/cloud/request-log.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import type {LoadResult} from '../support/load/process.js'
import {underLoad} from '../support/load/run.js'
import {countWrites, preparePlan, type WriteCount} from '../support/load/writes.js'
import {startMissing, stopNginx} from '../lb/lab-helpers.js'
import {median, repoRoot, settle, table} from './util.js'

const {values: flags} = parseArgs({
  options: {
    interval: {type: 'string', default: '1'},
    passes: {type: 'string', default: '5'},
    connections: {type: 'string', default: '16'},
    'skip-elb-check': {type: 'boolean', default: false},
    /** Some of detection, pass, load (default: all). */
    only: {type: 'string', default: 'detection,pass,load'},
  },
})
const only = new Set(flags.only.split(','))
const intervalS = Number(flags.interval)
const feedops = path.join(repoRoot, 'bin/run.js')
const workDir = mkdtempSync(path.join(tmpdir(), 'feedops-lb-bench-'))
const K = 3

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`)
}

interface Ran {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

function run(args: string[], opts: {onStdout?: (text: string, child: ChildProcess) => void; timeoutMs?: number} = {}): {child: ChildProcess; done: Promise<Ran>} {
  const started = performance.now()
  const child = spawn(process.execPath, [feedops, ...args], {cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, FORCE_COLOR: '0'}})
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString()
    opts.onStdout?.(stdout, child)
  })
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)))
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000)
  const done = new Promise<Ran>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr, ms: performance.now() - started})
    }),
  )
  return {child, done}
}

async function must(args: string[]): Promise<Ran> {
  const r = await run(args).done
  if (r.code !== 0) throw new Error(`feedops ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)} ${r.stdout.slice(-2000)}`)
  return r
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function writeConfig(lab: TestLab, name: string, edit: (env: Record<string, any>) => void): string {
  const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: {lab: Record<string, any>}}
  edit(doc.environments.lab)
  const file = path.join(lab.dir, name)
  writeFileSync(file, stringify(doc))
  return file
}

function targetGroupArn(lab: TestLab): string {
  const m = /"arn":\s*"([^"]+targetgroup[^"]+)"/.exec(readFileSync(path.join(lab.dir, 'lb.json'), 'utf8'))
  if (!m) throw new Error('no target group in lb.json')
  return m[1]!
}

log('lab: 3 app hosts, 10 NGINX nodes, 2 Postgres (PgBouncer), Redis, Memcached, the cloud endpoint and HAProxy')
const lab = await startTestLab({hosts: 3, nginx: 10, postgres: 2, pgbouncer: true, shards: true, redis: true, memcached: true, cloud: true})
const results: Record<string, unknown> = {}
try {
  const classic = lab.configFile
  const v2 = writeConfig(lab, 'elbv2.yml', (env) => (env.lb = {provider: 'elbv2', targetGroupArn: targetGroupArn(lab)}))
  // The app answers /readyz behind each node's /nginx-health; the load needs it whole.
  log('deploy the feed app')
  await must(['deploy', '--config', classic, '--json'])
  const elb = new ElasticLoadBalancingClient({region: 'us-east-1', endpoint: lab.layout.cloud.endpoint, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}})
  // Both views agree to start with: every node registered and counted healthy (J passes).
  for (const cfg of [classic, v2]) for (let i = 0; i < 2; i++) await run(['lb', 'rotate', '--config', cfg]).done

  // 1. Detection.
  const detection = !only.has('detection') ? undefined : await (async () => {
    const node = lab.layout.nginx[2]!
    const aws = {Target: 'TCP:8080', Interval: 30, Timeout: 5, UnhealthyThreshold: 2, HealthyThreshold: 10}
    if (!flags['skip-elb-check']) await elb.send(new ConfigureHealthCheckCommand({LoadBalancerName: 'feed-lab', HealthCheck: aws}))
    // Let the check settle into its 30 s rhythm with the node healthy.
    await sleep(2000)
    const watch = run(['lb', 'watch', '--interval', String(intervalS), '--config', v2])
    await sleep(intervalS * 1000 * 2 + 500)
    await settle()
    const since = new Date().toISOString()
    const t0 = Date.now()
    await stopNginx(lab, node.name)
    let elbOutMs: number | undefined
    let feedopsMs: number | undefined
    const deadline = t0 + (flags['skip-elb-check'] ? 30_000 : 120_000)
    while (Date.now() < deadline && (feedopsMs === undefined || (elbOutMs === undefined && !flags['skip-elb-check']))) {
      if (feedopsMs === undefined) {
        const dereg = readRequestLog(lab.dir, since).find((r) => r.action === 'DeregisterTargets' && r.status === 200)
        if (dereg) feedopsMs = Date.parse(dereg.time) - t0
      }
      if (elbOutMs === undefined && !flags['skip-elb-check']) {
        const h = await elb.send(new DescribeInstanceHealthCommand({LoadBalancerName: 'feed-lab', Instances: [{InstanceId: node.instanceId}]}))
        if (h.InstanceStates?.[0]?.State === 'OutOfService') elbOutMs = Date.now() - t0
      }
      await sleep(250)
    }
    watch.child.kill('SIGTERM')
    const w = await watch.done
    if (w.code !== 130) log(`lb watch ended with ${w.code}: ${w.stderr.slice(-500)}`)
    await elb.send(new ConfigureHealthCheckCommand({LoadBalancerName: 'feed-lab', HealthCheck: {Target: 'TCP:8080', Interval: 5, Timeout: 2, UnhealthyThreshold: 2, HealthyThreshold: 2}}))
    await startMissing(lab)
    for (const cfg of [classic, v2]) for (let i = 0; i < 3; i++) await run(['lb', 'rotate', '--config', cfg]).done
    // AWS's default computed too: the failure lands anywhere within an interval, then 2 failed checks.
    const computed = {best: (aws.UnhealthyThreshold - 1) * aws.Interval, worst: aws.UnhealthyThreshold * aws.Interval + aws.Timeout}
    return {feedopsMs, elbOutMs, goalMs: K * intervalS * 1000 + 1000, computedElbS: computed, ratio: feedopsMs && elbOutMs ? elbOutMs / feedopsMs : undefined}
  })()
  results.detection = detection
  if (detection) log(`detection: feedops ${detection.feedopsMs} ms, ELB (AWS defaults) ${detection.elbOutMs ?? '-'} ms`)

  // 2. One pass over 10 nodes.
  const passMs: number[] = []
  const passCpuS: number[] = []
  const cpuFile = path.join(workDir, 'cpu.txt')
  const withCpu = async (args: string[]): Promise<{ms: number; cpuS: number; code: number | null; out: string}> => {
    const started = performance.now()
    const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', cpuFile, process.execPath, feedops, ...args], {cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
    const [user, sys] = readFileSync(cpuFile, 'utf8').trim().split(/\s+/).slice(-2).map(Number)
    return {ms: performance.now() - started, cpuS: user! + sys!, code, out}
  }
  for (let i = 0; only.has('pass') && i < Number(flags.passes); i++) {
    await settle()
    const r = await withCpu(['lb', 'rotate', '--config', classic])
    if (r.code !== 0) throw new Error(`lb rotate exited ${r.code}: ${r.out}`)
    passMs.push(r.ms)
    passCpuS.push(r.cpuS)
  }
  const versionMs: number[] = []
  const hostsMs: number[] = []
  for (let i = 0; only.has('pass') && i < 3; i++) {
    versionMs.push((await withCpu(['--version'])).ms)
    hostsMs.push((await withCpu(['hosts', '--config', classic])).ms)
  }
  results.pass = {nodes: lab.layout.nginx.length, passMs, passCpuS, medianMs: median(passMs), medianCpuS: median(passCpuS), versionMs: median(versionMs), hostsMs: median(hostsMs), loadAverage: loadavg()}
  if (only.has('pass')) log(`one pass: median ${median(passMs).toFixed(0)} ms, CPU ${median(passCpuS).toFixed(2)} s (feedops --version ${median(versionMs).toFixed(0)} ms, hosts ${median(hostsMs).toFixed(0)} ms)`)

  // 3. Zero failed requests through the ELB front.
  const front = `http://${lab.layout.elb.address}:${lab.layout.elb.port}`
  const shards = appConfigFrom(loadConfig({flag: classic})).shards
  const scenario = async (name: string, work: () => Promise<string>): Promise<{name: string; note: string; load: Omit<LoadResult, 'ackedLikes' | 'ackedPhotos'>; writes: WriteCount}> => {
    // A plan of its own (users, photos): likes go to (user, photo) pairs, and another scenario's would count here.
    const plan = await preparePlan(front, [front], {users: 40, photosEach: 5})
    await settle()
    log(`load: ${name}`)
    const {value: note, load} = await underLoad(
      plan,
      {planFile: path.join(workDir, 'plan.json'), connections: Number(flags.connections), warmupMs: 2000, cooldownMs: 2000, maxSeconds: 300},
      work,
    )
    const writes = await countWrites(shards, plan, load)
    const {ackedLikes: _l, ackedPhotos: _p, ...rest} = load
    return {name, note, load: rest, writes}
  }
  const rotateUntil = async (cfg: string, want: RegExp, max = 10): Promise<number> => {
    for (let i = 1; i <= max; i++) {
      const r = await run(['lb', 'rotate', '--config', cfg]).done
      if (want.test(r.stdout)) return i
      await sleep(1000)
    }
    throw new Error(`lb rotate never printed ${want}`)
  }
  const scenarios: Awaited<ReturnType<typeof scenario>>[] = []
  if (only.has('load')) scenarios.push(
    await scenario('(a) node stopped, rotated out, started, rotated back', async () => {
      await stopNginx(lab, 'nginx4')
      const out = await rotateUntil(classic, /deregistered nginx4/)
      await startMissing(lab)
      const back = await rotateUntil(classic, /registered nginx4/)
      return `out after ${out} passes, back after ${back}`
    }),
  )
  if (only.has('load')) scenarios.push(
    await scenario('(b) drained by hand and restored', async () => {
      await must(['lb', 'drain', 'nginx5', '-m', 'bench', '--config', classic])
      await sleep(3000)
      await must(['lb', 'restore', 'nginx5', '--config', classic])
      return 'drain + restore'
    }),
  )
  if (only.has('load')) scenarios.push(
    await scenario('(c) rolling deploy under lb watch', async () => {
      const watch = run(['lb', 'watch', '--interval', '1', '--config', classic])
      await must(['deploy', '--config', classic, '--json'])
      await sleep(2000)
      watch.child.kill('SIGTERM')
      const w = await watch.done
      const rotatedOut = (w.stdout.match(/ deregistered nginx\d+ \(/g) ?? []).length
      return `lb watch deregistered ${rotatedOut} node(s)`
    }),
  )
  if (only.has('load')) scenarios.push(
    await scenario('(d) nginx reloaded node by node via drain/restore', async () => {
      const r = await must(['play', 'nginx-reload', '--config', classic, '--concurrency', '10', '--json'])
      const hosts = (JSON.parse(r.stdout) as {hosts: {ok: boolean}[]}).hosts
      return `${hosts.filter((h) => h.ok).length} of ${hosts.length} nodes reloaded and back`
    }),
  )
  results.load = scenarios

  // Tables.
  console.log('\nDetection: one NGINX node stopped → out of the load balancer')
  const d = detection
  if (d) console.log(
    table(
      ['who', 'settings', 'seconds', 'ELB ÷ feedops'],
      [
        ['feedops lb watch (deep probe)', `--interval ${intervalS}, K ${K}`, d.feedopsMs !== undefined ? (d.feedopsMs / 1000).toFixed(1) : '-', ''],
        ['ELB own check (HAProxy, AWS defaults)', 'interval 30 s, unhealthy 2', d.elbOutMs !== undefined ? (d.elbOutMs / 1000).toFixed(1) : '-', d.ratio ? `${d.ratio.toFixed(1)}x` : '-'],
        ['ELB, computed', 'AWS defaults', `${d.computedElbS.best}-${d.computedElbS.worst}`, ''],
      ],
    ),
  )
  if (d) console.log(`goal: feedops ≤ ${(d.goalMs / 1000).toFixed(0)} s\n`)
  if (only.has('pass')) {
    console.log(`One lb rotate pass over ${lab.layout.nginx.length} nodes (CLI start included, load average ${loadavg()[0]!.toFixed(1)})`)
    console.log(
      table(
        ['command', 'wall s (median)', 'CPU s (median)', 'runs (wall s)'],
        [
          ['feedops lb rotate', (median(passMs) / 1000).toFixed(2), median(passCpuS).toFixed(2), passMs.map((m) => (m / 1000).toFixed(2)).join(' ')],
          ['feedops hosts (CLI start + the EC2 inventory)', (median(hostsMs) / 1000).toFixed(2), '', ''],
          ['feedops --version (CLI start)', (median(versionMs) / 1000).toFixed(2), '', ''],
        ],
      ),
    )
    console.log('goal: lb rotate < 1.5 s\n')
  }
  console.log(`Load through the ELB front ${front} (${flags.connections} connections, reads + writes)`)
  console.log(
    table(
      ['scenario', 'requests', 'non-2xx', 'socket errors', 'acked writes', 'lost', 'twice', 'note'],
      scenarios.map((s) => [
        s.name,
        String(s.load.requests),
        String(s.load.non2xx),
        String(s.load.socketErrors + s.load.timeouts),
        String(s.writes.ackedLikes + s.writes.ackedPhotos),
        String(s.writes.lost),
        String(s.writes.appliedTwice),
        s.note,
      ]),
    ),
  )
  for (const s of scenarios) if (s.load.failures.length) log(`${s.name}: ${JSON.stringify(s.load.failures.slice(0, 10))}`)
} finally {
  const out = path.join(repoRoot, 'test/bench/results')
  mkdirSync(out, {recursive: true})
  writeFileSync(path.join(out, 'lb.json'), `${JSON.stringify(results, null, 2)}\n`)
  await lab.stop()
}
