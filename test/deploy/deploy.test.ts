/**
 * feedops deploy / rollback / releases / audit on one 12-host lab (real sshd hosts, Postgres, Redis,
 * Memcached), run through the built CLI as a user would. The tests run in order and build on each other:
 * a dry run on fresh hosts, the first deploy (the runtime goes up once), a second one with a concurrent
 * third that must exit 3, a rollback, three broken releases, a host killed mid-upload and then
 * unreachable at preflight, Ctrl-C, a stale lock broken by a deploy that also cleans up old releases,
 * and lab down.
 */
import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync, mkdirSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'
import {after, before, describe, it} from 'node:test'

import {parse, stringify} from 'yaml'

import type {DeployResult} from '../../src/deploy/run.js'
import {labDown, labUp} from '../../src/lab/index.js'
import {labPaths} from '../../src/lab/layout.js'
import {readState} from '../../src/lab/state.js'
import {initShards} from '../../src/shards/init.js'
import {ServerPools} from '../../src/shards/pools.js'
import {loadConfig} from '../../src/config/load.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import {underLoad} from '../support/load/run.js'
import {countWrites, preparePlan} from '../support/load/writes.js'
import {BROKEN, patchedProject, type PatchedProject} from '../support/patched-app.js'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const bin = path.join(repo, 'bin/run.js')
const HOSTS = 12
// The registry's runtime tarball is fetched once per machine, not per test run.
const cacheHome = path.join(tmpdir(), 'feedops-test-cache')

let lab: TestLab
let config: string
/** The same config with a 10 s gate, for the releases that can only fail it by timing out. */
let shortGate: string
let stateHome: string
/** A copy of the project whose sources the broken-release tests edit. */
let patched: PatchedProject

interface Ran {
  code: number | null
  stdout: string
  stderr: string
  json: any
}

function feedops(args: string[], opts: {env?: Record<string, string>; config?: string; bin?: string; onStart?: (child: ChildProcess) => void} = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [opts.bin ?? bin, ...args, '--config', opts.config ?? config], {
      cwd: repo,
      env: {...process.env, FORCE_COLOR: '0', XDG_CACHE_HOME: cacheHome, XDG_STATE_HOME: stateHome, ...opts.env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 420_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      let json: any
      try {
        json = JSON.parse(stdout)
      } catch {
        json = undefined
      }
      resolve({code, stdout, stderr, json})
    })
    opts.onStart?.(child)
  })
}

/** What went wrong, for an assertion message: stderr and each host's outcome and error. */
const why = (r: Ran) =>
  `${r.stderr}\n${r.json?.hosts ? r.json.hosts.map((h: {host: string; outcome: string; error: string | null}) => `${h.host} ${h.outcome} ${h.error ?? ''}`).join('\n') : r.stdout.slice(0, 2000)}`

const hostNames = () => lab.layout.hosts.map((h) => h.name)
const feedDir = (host: string) => path.join(labPaths.hostRoot(lab.dir, host), 'feed')
const currentOf = (host: string) => {
  try {
    return path.basename(readlinkSync(path.join(feedDir(host), 'current')))
  } catch {
    return null
  }
}
const releasesOn = (host: string) => (existsSync(path.join(feedDir(host), 'releases')) ? readdirSync(path.join(feedDir(host), 'releases')).sort() : [])

async function servedRelease(host: string): Promise<string | null> {
  const h = lab.layout.hosts.find((x) => x.name === host)!
  try {
    const res = await fetch(`http://${h.address}:8080/readyz`, {signal: AbortSignal.timeout(2000)})
    return res.status === 200 ? ((await res.json()) as {release: string}).release : `status ${res.status}`
  } catch {
    return null
  }
}

async function servedReleases(): Promise<(string | null)[]> {
  return Promise.all(hostNames().map(servedRelease))
}

/** Every path under a host's root with its type, size, mode, mtime and link target. */
function snapshot(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name)
      const st = lstatSync(p)
      out.push(`${path.relative(dir, p)} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${st.isSymbolicLink() ? readlinkSync(p) : ''}`)
      if (st.isDirectory()) walk(p)
    }
  }
  walk(dir)
  return out
}

/** The URLs in the config that carry credentials: the catalog, each shard server's, Redis. */
function serviceUrls(): string[] {
  const env = (parse(readFileSync(config, 'utf8')) as any).environments.lab
  return [env.shards.catalog, ...env.shards.servers.flatMap((s: any) => [s.url, s.pooledUrl].filter(Boolean)), env.redis.url]
}

/** Every regular file under dir (not following links, not into releases' code) whose text holds one of the secrets. */
function secretBearing(dir: string, secrets: string[]): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name)
      const st = lstatSync(p)
      if (st.isDirectory() && name !== 'runtimes' && name !== 'cache') walk(p)
      else if (st.isFile() && st.size < 1 << 20 && secrets.some((x) => readFileSync(p, 'utf8').includes(x))) out.push(p)
    }
  }
  walk(dir)
  return out
}

const outcomes = (r: DeployResult) => Object.fromEntries(r.hosts.map((h) => [h.host, h.outcome]))

/** Stops a host's sshd and every session it has open: the host is gone. */
function killHost(name: string): void {
  const rec = readState(lab.dir)!.processes.find((r) => r.component === 'sshd' && r.name === name)!
  const pid = rec.pid!
  // Its per-connection sshd processes first, then the listener.
  for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(child), 'SIGKILL')
    } catch {}
  }
  process.kill(pid, 'SIGKILL')
}

async function reviveHosts(): Promise<void> {
  await labUp({dir: lab.dir, net: lab.net, hosts: HOSTS, postgres: 1, redis: true, memcached: true, cloud: false, nginx: 1, pgbouncer: false})
}

describe('feedops deploy on 12 lab hosts', {timeout: 900_000}, () => {
  let first: string
  let second: string
  /** What every host runs between the tests below. */
  let serving: string

  before(async () => {
    patched = patchedProject()
    lab = await startTestLab({hosts: HOSTS, postgres: 1, redis: true, memcached: true, nginx: 1})
    stateHome = path.join(lab.dir, 'state')
    // The lab's config, with keep 3 so cleanup shows within a few deploys.
    const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: {lab: Record<string, any>}}
    const env = doc.environments.lab
    env.shards.logical = 8
    // No bake, and the canary on a 400 ms window: these tests are about the steps; test/deploy/flow.test.ts
    // is about the re-checks and the bake.
    env.deploy = {...env.deploy, keep: 3, health: {timeout: 20, stableMs: 400}, stopTimeout: 5, bakeSeconds: 0}
    // A loaded 2-core machine can take longer than the default 10 s to answer a connect.
    env.ssh.connectTimeout = 30
    config = path.join(lab.dir, 'deploy.yml')
    writeFileSync(config, stringify(doc))
    env.deploy.health.timeout = 10
    shortGate = path.join(lab.dir, 'deploy-short.yml')
    writeFileSync(shortGate, stringify(doc))
    const pools = new ServerPools(loadConfig({flag: config}).env.shards!)
    try {
      await initShards(pools, loadConfig({flag: config}).env.shards!)
    } finally {
      await pools.end()
    }
  })
  after(async () => {
    await lab?.stop()
    patched?.remove()
  })

  it('--dry-run prints the plan and changes nothing on any host, nor does bad input or a failed preflight', async () => {
    const before = hostNames().map((h) => snapshot(labPaths.hostRoot(lab.dir, h)))
    const r = await feedops(['deploy', '--dry-run', '--json'])
    assert.equal(r.code, 0, why(r))
    const plan = (r.json as DeployResult).plan
    assert.deepEqual(plan.batches.map((b) => b.length), [1, 3, 6, 2])
    assert.deepEqual(plan.batches[0], ['app1'])
    assert.equal(plan.runtimeUploads.length, HOSTS)
    assert.match(plan.release, /^\d{8}T\d{6}Z-[0-9a-f]{7}(-dirty)?$/)
    assert.ok(plan.steps.some((s) => s.includes('switch current')))
    // Bad input and a failed preflight change nothing either.
    const badBatch = await feedops(['deploy', '--json', '--batch', '1,0'])
    assert.equal(badBatch.code, 2)
    assert.match(badBatch.json.error.message, /--batch has "0"/)
    const doc = parse(readFileSync(config, 'utf8')) as {environments: {lab: Record<string, any>}}
    doc.environments.lab.deploy.minFreeMb = 1 << 30
    const noDisk = path.join(lab.dir, 'no-disk.yml')
    writeFileSync(noDisk, stringify(doc))
    const full = await feedops(['deploy', '--json'], {config: noDisk})
    assert.equal(full.code, 1)
    assert.match(full.json.error.message, /^Preflight: app1 \(\d+ MiB free\), .* have less than deploy\.minFreeMb = 1073741824 MiB free under ~\/feed; nothing was changed\.$/)
    assert.deepEqual(hostNames().map((h) => snapshot(labPaths.hostRoot(lab.dir, h))), before)
  })

  it('deploys to 12 hosts: runtime uploaded once, every host serving the new release', async () => {
    const r = await feedops(['deploy', '--json', '-m', 'first'])
    assert.equal(r.code, 0, why(r))
    const res = r.json as DeployResult
    first = res.release
    assert.ok(res.ok)
    assert.ok(res.hosts.every((h) => h.outcome === 'updated' && h.runtimeUploaded && h.previous === null && h.current === first))
    assert.deepEqual(await servedReleases(), hostNames().map(() => first))
    for (const h of hostNames()) assert.equal(currentOf(h), first)
    // The release's config is its own (shared/config/<id>/); the secret is in its app.env only, and nowhere in
    // the output. Every file on a host that holds a secret (the app secret, or the service URLs, which carry the
    // database and Redis credentials) is the deploy user's alone: 0600, in a 0700 folder.
    const secret = (parse(readFileSync(config, 'utf8')) as any).environments.lab.app.secret as string
    assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret))
    assert.ok(readFileSync(path.join(feedDir('app3'), 'shared', 'config', first, 'app.env'), 'utf8').includes(secret))
    assert.ok(!readFileSync(path.join(feedDir('app3'), 'shared', 'config', first, 'feedops.json'), 'utf8').includes(secret))
    for (const h of hostNames()) {
      const found = secretBearing(feedDir(h), [secret, ...serviceUrls()])
      assert.ok(found.some((f) => f.endsWith('app.env')) && found.some((f) => f.endsWith('feedops.json')), `${h}: ${found.join(', ')}`)
      for (const f of found) assert.equal((statSync(f).mode & 0o777).toString(8), '600', `${h}: ${f}`)
      assert.equal((statSync(path.join(feedDir(h), 'shared', 'config', first)).mode & 0o777).toString(8), '700', h)
    }
    // The app runs on the runtime the release carries (Node 24), from the release's real path.
    const pid = (JSON.parse(readFileSync(path.join(feedDir('app2'), 'shared', 'app.pid'), 'utf8')) as {pid: number}).pid
    assert.equal(readlinkSync(`/proc/${pid}/exe`), path.join(feedDir('app2'), 'runtimes', '24.22.3', 'bin', 'node'))
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), new RegExp(`feed/releases/${first}/app\\.mjs`))
    // Phases are timed per host, in order.
    const phases = res.hosts[0]!.phases.map((p) => p.phase)
    // A new build's compile cache follows the release (made meanwhile); a reused build's is in its tarball.
    assert.deepEqual(phases, ['upload runtime', 'upload', 'unpack', ...(res.bundleReused ? [] : ['upload cache']), 'switch', 'restart', 'health'])
    for (const h of hostNames()) {
      assert.match(readdirSync(path.join(feedDir(h), 'releases', first, 'cache')).join(' '), /^app-[0-9a-f]{8}\.jsc$/, `${h} has the compile cache`)
      // ... and its app started with it (app-loader.ts says on stderr when it cannot).
      assert.doesNotMatch(readFileSync(path.join(feedDir(h), 'shared', 'log', 'app.log'), 'utf8'), /code cache|rejected cache/, h)
    }
  })

  it('a second deploy, under a load through NGINX, switches every host with no failed request and every acknowledged write applied once; a concurrent one, on other hosts, exits 3 naming the holder', async () => {
    const url = `http://${lab.layout.nginx[0]!.address}:${lab.layout.nginx[0]!.httpPort}`
    const plan = await preparePlan(url, [url], {users: 12, photosEach: 2})
    let concurrent: Promise<Ran> | undefined
    const {value: r, load} = await underLoad(plan, {planFile: path.join(lab.dir, 'load-plan.json'), connections: 8, warmupMs: 1000, cooldownMs: 1000, maxSeconds: 240}, () =>
      feedops(['deploy', '--json', '-m', 'second'], {
        onStart: () => {
          concurrent = (async () => {
            const lock = path.join(feedDir('app1'), 'lock')
            for (let i = 0; i < 400 && !existsSync(path.join(lock, 'owner.json')); i++) await sleep(25)
            // Another subset of the fleet: the lock is the fleet's, on its first app host, whatever the selection.
            return feedops(['deploy', '--json', '--hosts', 'app7,app8'])
          })()
        },
      }),
    )
    assert.equal(r.code, 0, why(r))
    // Each host's new process started beside the old one: no connect refused, no request failed.
    assert.deepEqual({non2xx: load.non2xx, socketErrors: load.socketErrors, timeouts: load.timeouts, failures: load.failures}, {non2xx: 0, socketErrors: 0, timeouts: 0, failures: []})
    assert.ok(load.reads > 100 && load.ackedPhotos.length > 10 && load.ackedLikes.length > 10, `only ${load.requests} requests`)
    const writes = await countWrites(loadConfig({flag: config}).env.shards!, plan, load)
    assert.equal(writes.lost, 0)
    assert.equal(writes.appliedTwice, 0)
    const res = r.json as DeployResult
    second = res.release
    assert.ok(res.hosts.every((h) => h.outcome === 'updated' && !h.runtimeUploaded && h.previous === first))
    assert.deepEqual(await servedReleases(), hostNames().map(() => second))
    const other = await concurrent!
    assert.equal(other.code, 3, other.stderr + other.stdout)
    assert.match(other.json.error.message, /deploy lock on app1 is held by root@.* \(pid \d+\).*deploying .*: "second"; last heartbeat \d+ s ago/)
    assert.ok(!existsSync(path.join(feedDir('app1'), 'lock')), 'the lock is released')
  })

  it('rollback goes back to the release before, health-gated; releases shows it', async () => {
    const r = await feedops(['rollback', '--json', '--batch', '50%'])
    assert.equal(r.code, 0, why(r))
    assert.equal((r.json as DeployResult).release, first)
    assert.deepEqual(await servedReleases(), hostNames().map(() => first))
    const rel = await feedops(['releases', '--json'])
    assert.equal(rel.code, 0, why(rel))
    for (const h of rel.json.hosts) {
      assert.equal(h.current, first)
      assert.equal(h.running, first)
      assert.equal(h.differs, false)
      assert.deepEqual(h.releases, [first, second])
    }
    const missing = await feedops(['rollback', '--to', '20200101T000000Z-0000000', '--json'])
    assert.equal(missing.code, 2)
    assert.match(missing.json.error.message, /app1, app2, .*app12 lack release 20200101T000000Z-0000000; nothing was changed/)
    serving = first
  })

  for (const [broken, what] of [
    [BROKEN.unready, 'never ready'],
    [BROKEN.exitsAfter(100), 'ready, then crashes'],
    [BROKEN.keepOld, 'restart leaves the old process running'],
  ] as const) {
    it(`a release whose app is ${what} fails its canary, is switched back and marked bad there (abandoned elsewhere); exit 1`, async () => {
      patched.reset()
      patched.patch(broken[0], broken[1], broken[2])
      const r = await feedops(['deploy', '--json'], {bin: patched.bin, ...(broken === BROKEN.unready || broken === BROKEN.keepOld ? {config: shortGate} : {})})
      assert.equal(r.code, 1, why(r))
      const res = r.json as DeployResult
      assert.equal(res.stopped, 'max-fail', why(r))
      assert.equal(outcomes(res).app1, 'failed')
      assert.match(res.hosts[0]!.error!, /did not report release|within its stable window/)
      assert.ok(res.hosts.slice(1).every((h) => h.outcome === 'not-started'))
      assert.deepEqual(res.markedBad, ['app1'])
      assert.ok(existsSync(path.join(feedDir('app1'), 'releases', res.release, 'BAD')))
      assert.ok(existsSync(path.join(feedDir('app5'), 'releases', res.release, 'ABANDONED')))
      assert.ok(!existsSync(path.join(feedDir('app5'), 'releases', res.release, 'BAD')))
      // Nothing is left serving it: every host runs the release before, current points at it.
      assert.deepEqual(await servedReleases(), hostNames().map(() => serving))
      for (const h of hostNames()) assert.equal(currentOf(h), serving)
    })
  }

  it('a host killed mid-upload stops the deploy before any switch; unreachable at preflight it is refused or skipped', async () => {
    // app12 loses its runtime, so its upload is long enough to be cut.
    rmSync(path.join(feedDir('app12'), 'runtimes'), {recursive: true, force: true})
    const tmp = path.join(feedDir('app12'), 'tmp')
    const r = await feedops(['deploy', '--json'], {
      onStart: () => {
        void (async () => {
          for (let i = 0; i < 2000; i++) {
            const up = existsSync(tmp) ? readdirSync(tmp).find((f) => f.startsWith('node-linux-x64')) : undefined
            if (up && statSync(path.join(tmp, up)).size > 1 << 20) return killHost('app12')
            await sleep(10)
          }
        })()
      },
    })
    assert.equal(r.code, 1, why(r))
    const res = r.json as DeployResult
    assert.equal(res.stopped, 'ship')
    assert.equal(outcomes(res).app12, 'ship-failed')
    assert.ok(res.hosts.every((h) => h.phases.every((p) => p.phase !== 'switch')))
    assert.deepEqual((await servedReleases()).slice(0, 11), hostNames().slice(0, 11).map(() => serving))
    assert.ok(!existsSync(path.join(feedDir('app12'), 'runtimes', '24.22.3')), 'no half runtime')

    const refused = await feedops(['deploy', '--json'])
    assert.equal(refused.code, 1)
    assert.match(refused.json.error.message, /^Preflight: app12 is unreachable .*nothing was changed\.$/)
    assert.match(refused.json.error.fix, /--skip-unreachable/)

    const skipped = await feedops(['deploy', '--json', '--skip-unreachable', '--batch', '100%'])
    assert.equal(skipped.code, 0, why(skipped))
    const sres = skipped.json as DeployResult
    assert.equal(outcomes(sres).app12, 'skipped')
    assert.deepEqual((await servedReleases()).slice(0, 11), hostNames().slice(0, 11).map(() => sres.release))
    await reviveHosts()
  })

  it('Ctrl-C mid-deploy starts no new host, switches back the one in flight, unlocks and prints the summary (exit 130)', async () => {
    const was = hostNames().map(currentOf)
    const r = await feedops(['deploy', '--json', '--batch', '1'], {
      onStart: (child) => {
        void (async () => {
          // Interrupt while app3 is being switched (two hosts done).
          for (let i = 0; i < 4000 && currentOf('app3') === was[2]; i++) await sleep(10)
          child.kill('SIGINT')
        })()
      },
    })
    assert.equal(r.code, 130, why(r))
    const res = r.json as DeployResult
    assert.equal(res.stopped, 'interrupted')
    const o = outcomes(res)
    assert.equal(o.app1, 'updated')
    assert.equal(o.app2, 'updated')
    assert.ok(o.app3 === 'interrupted' || o.app3 === 'updated', o.app3)
    assert.ok(hostNames().slice(4).every((h) => o[h] === 'not-started'))
    assert.ok(!existsSync(path.join(feedDir('app1'), 'lock')))
    // Every host serves what its current link says.
    const served = await servedReleases()
    hostNames().forEach((h, i) => assert.equal(served[i], currentOf(h), h))
  })

  it('a stale lock is reported (exit 3) and broken with --force-unlock; the deploy keeps the last 3 releases, never the running one nor the one before it', async () => {
    const lock = path.join(feedDir('app1'), 'lock')
    mkdirSync(lock)
    writeFileSync(path.join(lock, 'owner.json'), JSON.stringify({owner: 'gone@elsewhere', pid: 999999, release: 'r0', action: 'deploy', message: 'crashed', token: 't'}))
    writeFileSync(path.join(lock, 'heartbeat'), '')
    const old = new Date(Date.now() - 600_000)
    utimesSync(path.join(lock, 'heartbeat'), old, old)
    const refused = await feedops(['deploy', '--json'])
    assert.equal(refused.code, 3)
    assert.match(refused.json.error.message, /is stale: held by a run that stopped gone@elsewhere \(pid 999999\).*last heartbeat \d+ s ago/)
    assert.match(refused.json.error.fix, /--force-unlock/)

    const r = await feedops(['deploy', '--json', '--force-unlock', '--batch', '100%'])
    assert.equal(r.code, 0, why(r))
    const res = r.json as DeployResult
    assert.equal(res.brokeLock?.owner.owner, 'gone@elsewhere')
    assert.deepEqual(await servedReleases(), hostNames().map(() => res.release))
    const present = releasesOn('app1')
    assert.ok(present.includes(res.release) && present.includes(res.hosts[0]!.previous!), present.join(' '))
    assert.ok(present.length <= 4, present.join(' '))
    assert.ok(!present.includes(first) && Object.keys(res.removed).length === HOSTS)

    const audit = await feedops(['audit', '--json'])
    assert.equal(audit.code, 0, why(audit))
    const local = audit.json.entries.filter((e: {source: string}) => e.source === 'local').map((e: {result: string}) => e.result)
    assert.ok(local.includes('interrupted') && local.includes('failed') && local.includes('ok'), local.join(' '))
    assert.ok(audit.json.entries.some((e: {source: string; release: string}) => e.source === 'app7' && e.release === res.release))
  })

  it('lab down stops the apps the deploys started, by their pid files', async () => {
    const pids = hostNames().map((h) => (JSON.parse(readFileSync(path.join(feedDir(h), 'shared', 'app.pid'), 'utf8')) as {pid: number}).pid)
    assert.ok(pids.every((p) => existsSync(`/proc/${p}`)))
    await labDown(lab.dir)
    for (const p of pids) assert.ok(!existsSync(`/proc/${p}`) || /^\d+ \(\S+\) Z/.test(readFileSync(`/proc/${p}/stat`, 'utf8')), `pid ${p} still runs`)
    assert.ok(!existsSync(path.join(feedDir('app1'), 'shared', 'app.pid')))
  })
})
