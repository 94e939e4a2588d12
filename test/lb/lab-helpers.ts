import {readFileSync, rmSync, writeFileSync} from 'node:fs'
import http from 'node:http'
import path from 'node:path'

import {DeregisterInstancesFromLoadBalancerCommand, DescribeInstanceHealthCommand, ElasticLoadBalancingClient, RegisterInstancesWithLoadBalancerCommand} from '@aws-sdk/client-elastic-load-balancing'
import {parse, stringify} from 'yaml'

import {loadConfig} from '../../src/config/load.js'
import {labUp} from '../../src/lab/index.js'
import {openLb} from '../../src/lb/context.js'
import {runPass, type PassResult} from '../../src/lb/pass.js'
import {labPaths} from '../../src/lab/layout.js'
import {readState} from '../../src/lab/state.js'
import {readCloudFile, writeCloudFile, type CloudFile} from '../../src/lab/cloud/cloud-file.js'
import {nginxNodeFiles, renderUpstreams} from '../../src/lb/nginx-conf.js'
import {cli, type Ran} from '../support/cli.js'
import type {TestLab} from '../support/lab.js'

// The SDK warns under Node 20 on every client it makes; the CLI turns it off the same way.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

/**
 * What the lb tests do to a real lab (HAProxy as the ELB, nginx nodes, sshd, the cloud endpoint): stop
 * and start a node's nginx, point its upstreams at a dead port, inject faults, and run the CLI.
 */

/** A stand-in app host on its lab address: answers /readyz (what /nginx-health asks for) and everything else 200. */
export class ReadyApp {
  private server: http.Server | undefined
  constructor(readonly address: string) {}
  async start(): Promise<void> {
    if (this.server) return
    const server = http.createServer((req, res) => {
      req.resume()
      res.writeHead(200, {'content-type': 'text/plain'}).end('ready')
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(8080, this.address, resolve)
    })
    this.server = server
  }
  async stop(): Promise<void> {
    const s = this.server
    this.server = undefined
    if (!s) return
    const closed = new Promise((resolve) => s.close(resolve))
    s.closeAllConnections()
    await closed
  }
}

export interface LbLab {
  lab: TestLab
  apps: ReadyApp[]
  /** The lab's own feedops.yml (lb: classic feed-lab). */
  config: string
  /** A copy with lb: elbv2 over the lab's target group. */
  elbv2Config: string
  elb: ElasticLoadBalancingClient
}

export async function lbLab(lab: TestLab): Promise<LbLab> {
  const apps = lab.layout.hosts.map((h) => new ReadyApp(h.address))
  await Promise.all(apps.map((a) => a.start()))
  const elb = new ElasticLoadBalancingClient({region: 'us-east-1', endpoint: lab.layout.cloud.endpoint, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}})
  return {lab, apps, config: lab.configFile, elbv2Config: writeConfig(lab, 'elbv2.yml', (env) => void (env.lb = {provider: 'elbv2', targetGroupArn: targetGroupArn(lab)})), elb}
}

/** The lab's target group ARN, as `lab up` made it (from the elbv2 section the lab can write). */
function targetGroupArn(lab: TestLab): string {
  const cloud = readFileSync(path.join(lab.dir, 'lb.json'), 'utf8')
  const m = /"arn":\s*"([^"]+targetgroup[^"]+)"/.exec(cloud)
  if (!m) throw new Error('the lab has no target group in lb.json')
  return m[1]!
}

/** A copy of the lab's config with the lab environment changed by `edit`. */
export function writeConfig(lab: TestLab, name: string, edit: (env: Record<string, unknown>) => void): string {
  const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: {lab: Record<string, unknown>}}
  edit(doc.environments.lab)
  const file = path.join(lab.dir, name)
  writeFileSync(file, stringify(doc))
  return file
}

export function lb(args: string[], config: string, opts: Parameters<typeof cli>[1] = {}): Promise<Ran> {
  return cli(['lb', ...args, '--config', config], opts)
}

/**
 * One pass in this process (the code `lb rotate` runs, against the same lab, without a CLI start each time),
 * for the passes a test only counts through; the CLI itself runs where its output and exit code are asserted.
 */
export async function passInProcess(config: string): Promise<{code: number; result: PassResult}> {
  const loaded = loadConfig({flag: config})
  const ctx = await openLb(loaded.env, loaded.environment)
  try {
    const result = await runPass(ctx, {dryRun: false, what: 'rotate'})
    return {code: result.exitCode, result}
  } finally {
    await ctx.close()
  }
}

/** `lb rotate --json`, parsed. */
export async function rotate(config: string): Promise<{code: number | null; result: any; ran: Ran}> {
  const ran = await lb(['rotate', '--json'], config)
  let result: any
  try {
    result = JSON.parse(ran.stdout)
  } catch {
    throw new Error(`lb rotate printed no JSON (exit ${ran.code}): ${ran.stdout}${ran.stderr}`)
  }
  return {code: ran.code, result, ran}
}

export const actionsOf = (r: any): string[] => (r.actions ?? []).map((a: any) => `${a.action} ${a.node}${a.ok ? '' : ' FAILED'}`)

function nginxPid(lab: TestLab, node: string): number | null {
  return readState(lab.dir)?.processes.find((p) => p.component === 'nginx' && p.name === node)?.pid ?? null
}

/** Stops a node's nginx (its master, by the pid the lab recorded) and waits until it is gone. */
export async function stopNginx(lab: TestLab, node: string): Promise<void> {
  const pid = nginxPid(lab, node)
  if (!pid) throw new Error(`no nginx pid for ${node}`)
  process.kill(pid, 'SIGTERM')
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0)
    } catch {
      return
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`nginx of ${node} did not stop`)
}

/** Starts what the lab lacks (a stopped nginx), leaving registrations alone. */
export async function startMissing(lab: TestLab): Promise<void> {
  // Every part as the lab has it now (a shape given here would stop what it leaves out).
  await labUp({dir: lab.dir})
}

/** Points a node's upstreams at a dead port (nginx answers, reaches no app host), or back at the app hosts. */
export async function breakUpstreams(lab: TestLab, node: string, broken: boolean): Promise<void> {
  const files = nginxNodeFiles(labPaths.nginxDir(lab.dir, node))
  const servers = broken ? [{address: '127.0.0.1', port: 9}] : lab.layout.hosts.map((h) => ({address: h.address, port: 8080}))
  writeFileSync(files.upstreams, renderUpstreams(servers))
  const pid = Number(readFileSync(files.pid, 'utf8').trim())
  const before = workers(pid)
  process.kill(pid, 'SIGHUP')
  // Done once every old worker has exited (one still accepting would answer from the old upstreams).
  for (let i = 0; i < 200; i++) {
    const now = workers(pid)
    if (now.length > 0 && now.every((w) => !before.includes(w))) {
      const status = await healthStatus(lab, node)
      if (broken ? status >= 500 : status === 200) return
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`${node} did not reload its upstreams`)
}

/** An nginx master's worker pids (its children, cache helpers included). */
function workers(master: number): number[] {
  try {
    return readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

export function healthStatus(lab: TestLab, node: string): Promise<number> {
  const n = lab.layout.nginx.find((x) => x.name === node)!
  return new Promise((resolve) => {
    const req = http.get({host: n.address, port: 8080, path: '/nginx-health', agent: false}, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', () => resolve(0))
    req.setTimeout(2000, () => req.destroy())
  })
}

export async function setFaults(lab: TestLab, faults: CloudFile['faults'] | undefined): Promise<void> {
  const cloud = await readCloudFile(lab.dir)
  const next = {...cloud} as Record<string, unknown>
  if (faults) next.faults = faults
  else delete next.faults
  await writeCloudFile(lab.dir, next as CloudFile)
}

/** Back to a clean start: every nginx up with good upstreams, every node registered, no kept state, no faults. */
export async function reset(l: LbLab): Promise<void> {
  await setFaults(l.lab, undefined)
  if (l.lab.layout.nginx.some((n) => !nginxPid(l.lab, n.name) || !alive(nginxPid(l.lab, n.name)!))) await startMissing(l.lab)
  await Promise.all(l.apps.map((a) => a.start()))
  for (const n of l.lab.layout.nginx) if ((await healthStatus(l.lab, n.name)) !== 200) await breakUpstreams(l.lab, n.name, false)
  // Only the nodes out: a node registered again would start its registration (and the ELB's checks) over.
  const health = await l.elb.send(new DescribeInstanceHealthCommand({LoadBalancerName: 'feed-lab'}))
  const registered = new Set((health.InstanceStates ?? []).map((s) => s.InstanceId))
  const Instances = l.lab.layout.nginx.filter((n) => !registered.has(n.instanceId)).map((n) => ({InstanceId: n.instanceId}))
  if (Instances.length > 0) await l.elb.send(new RegisterInstancesWithLoadBalancerCommand({LoadBalancerName: 'feed-lab', Instances}))
  for (const f of ['lb-state-classic-feed-lab.json']) rmSync(path.join(l.lab.dir, f), {force: true})
}

/** Waits until the lab ELB's own (shallow) check says InService. */
export async function untilInService(l: LbLab, instanceId: string, timeoutMs = 20_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const out = await l.elb.send(new DescribeInstanceHealthCommand({LoadBalancerName: 'feed-lab', Instances: [{InstanceId: instanceId}]}))
    if (out.InstanceStates?.[0]?.State === 'InService') return
    await new Promise((r) => setTimeout(r, 250))
  }
  throw new Error(`${instanceId} never came InService at feed-lab`)
}

export async function deregisterByHand(l: LbLab, instanceId: string): Promise<void> {
  await l.elb.send(new DeregisterInstancesFromLoadBalancerCommand({LoadBalancerName: 'feed-lab', Instances: [{InstanceId: instanceId}]}))
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
