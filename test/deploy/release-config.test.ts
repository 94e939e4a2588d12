/**
 * Each release's config travels with it, and each release is verified, on a 3-host lab (real sshd hosts,
 * Postgres, Redis, Memcached) through the built CLI. In order: configs the app would refuse are refused
 * before any host is touched; the first deploy leaves every secret-bearing file 0600; a config that only
 * fails on the hosts (a dead pooledUrl) is switched back with the old config, which serves again, and is
 * said to be a config failure, not a bad release; a rollback brings back the config its release ran with; a
 * line appended to app.cjs on one host is named by `releases --verify`, refused by rollback and warned of by
 * the next deploy's preflight.
 */
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {appendFileSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import {parse, stringify} from 'yaml'

import {loadConfig} from '../../src/config/load.js'
import type {DeployResult} from '../../src/deploy/run.js'
import {labPaths} from '../../src/lab/layout.js'
import {initShards} from '../../src/shards/init.js'
import {ServerPools} from '../../src/shards/pools.js'
import {bin, repoRoot} from '../support/cli.js'
import {startTestLab, type TestLab} from '../support/lab.js'

const HOSTS = 3
const cacheHome = path.join(tmpdir(), 'feedops-test-cache')

let lab: TestLab
let config: string
let stateHome: string

interface Ran {
  code: number | null
  stdout: string
  stderr: string
  json: any
}

function feedops(args: string[], file = config): Promise<Ran> {
  return new Promise((resolve, reject) => {
    // --config before a `--` (what follows it is the command `run` runs)
    const end = args.includes('--') ? args.indexOf('--') : args.length
    const child = spawn(process.execPath, [bin, ...args.slice(0, end), '--config', file, ...args.slice(end)], {
      cwd: repoRoot,
      env: {...process.env, FORCE_COLOR: '0', XDG_CACHE_HOME: cacheHome, XDG_STATE_HOME: stateHome},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      let json: any
      try {
        json = JSON.parse(stdout)
      } catch {}
      resolve({code, stdout, stderr, json})
    })
  })
}

const why = (r: Ran) =>
  `${r.stderr}\n${r.json?.hosts ? r.json.hosts.map((h: {host: string; outcome: string; error: string | null}) => `${h.host} ${h.outcome} ${h.error ?? ''}`).join('\n') : r.stdout.slice(0, 2000)}`
const hostNames = () => lab.layout.hosts.map((h) => h.name)
const feedDir = (host: string) => path.join(labPaths.hostRoot(lab.dir, host), 'feed')
const currentOf = (host: string) => path.basename(readlinkSync(path.join(feedDir(host), 'current')))

async function served(host: string): Promise<string | null> {
  const h = lab.layout.hosts.find((x) => x.name === host)!
  try {
    const res = await fetch(`http://${h.address}:8080/readyz`, {signal: AbortSignal.timeout(2000)})
    return res.status === 200 ? ((await res.json()) as {release: string}).release : `status ${res.status}`
  } catch {
    return null
  }
}
const servedAll = () => Promise.all(hostNames().map(served))

/** The lab's config with `change` applied to its environment, written beside it. */
function variant(name: string, change: (env: Record<string, any>) => void): string {
  const doc = parse(readFileSync(config, 'utf8')) as {environments: {lab: Record<string, any>}}
  change(doc.environments.lab)
  const file = path.join(lab.dir, `${name}.yml`)
  writeFileSync(file, stringify(doc))
  return file
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

/** Regular files under dir (not the runtimes, not the compile caches) whose text holds one of the secrets. */
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

/** The app's process on a host (the pid file names its supervisor, whose state names the app), and the config its command line names. */
function appProcess(host: string): {pid: number; config: string} {
  const supervisor = (JSON.parse(readFileSync(path.join(feedDir(host), 'shared', 'app.pid'), 'utf8')) as {pid: number}).pid
  const pid = (JSON.parse(readFileSync(path.join(feedDir(host), 'shared', 'run', `supervisor-${supervisor}.json`), 'utf8')) as {app: number}).app
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  return {pid, config: argv[argv.indexOf('--config') + 1]!}
}

describe('each release with its own config, and verified', {timeout: 600_000}, () => {
  let first: string
  let second: string

  before(async () => {
    lab = await startTestLab({hosts: HOSTS, postgres: 1, redis: true, memcached: true})
    stateHome = path.join(lab.dir, 'state')
    const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: {lab: Record<string, any>}}
    const env = doc.environments.lab
    env.shards.logical = 4
    env.deploy = {...env.deploy, keep: 5, batch: '1,100%', health: {timeout: 20, stableMs: 200}, stopTimeout: 5}
    env.ssh.connectTimeout = 30
    config = path.join(lab.dir, 'deploy.yml')
    writeFileSync(config, stringify(doc))
    const shards = loadConfig({flag: config}).env.shards!
    const pools = new ServerPools(shards)
    try {
      await initShards(pools, shards)
    } finally {
      await pools.end()
    }
  })
  after(() => lab?.stop())

  it('a config the app would refuse is refused before shipping: nothing on any host changes (exit 2)', async () => {
    const before = hostNames().map((h) => snapshot(labPaths.hostRoot(lab.dir, h)))
    const twins = variant('twin-servers', (env) => env.shards.servers.push({...env.shards.servers[0], url: env.shards.servers[0].url}))
    const badKey = variant('bad-app-key', (env) => (env.app.poolMax = 0))
    const shortSecret = variant('short-secret', (env) => (env.app.secret = 'short'))
    for (const [file, message] of [
      [twins, /environments\.lab\.shards\.servers\.1\.name: "pg1" is also the name of servers\.0/],
      [badKey, /environments\.lab\.app is invalid: poolMax: /],
      [shortSecret, /environments\.lab\.app is invalid: secret: at least 16 characters/],
    ] as const) {
      const r = await feedops(['deploy', '--json'], file)
      assert.equal(r.code, 2, why(r))
      assert.match(r.json.error.message, message)
      assert.match(r.json.error.message, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 'the error names the file')
    }
    assert.deepEqual(hostNames().map((h) => snapshot(labPaths.hostRoot(lab.dir, h))), before)
  })

  it('a deploy writes each release its own config, and every secret-bearing file on a host is 0600', async () => {
    const r = await feedops(['deploy', '--json'])
    assert.equal(r.code, 0, why(r))
    first = (r.json as DeployResult).release
    assert.deepEqual(await servedAll(), hostNames().map(() => first))
    const env = (parse(readFileSync(config, 'utf8')) as any).environments.lab
    const secrets = [env.app.secret, env.shards.catalog, ...env.shards.servers.flatMap((s: any) => [s.url, s.pooledUrl].filter(Boolean)), env.redis.url]
    for (const h of hostNames()) {
      const found = secretBearing(feedDir(h), secrets)
      assert.ok(found.some((f) => f.endsWith(`config/${first}/app.env`)) && found.some((f) => f.endsWith(`config/${first}/feedops.json`)), `${h}: ${found.join(', ')}`)
      for (const f of found) {
        assert.equal((statSync(f).mode & 0o777).toString(8), '600', `${h}: ${path.relative(feedDir(h), f)}`)
        // owned by the deploy user (the lab's hosts log in as the user running the tests)
        assert.equal(statSync(f).uid, process.getuid!(), `${h}: ${path.relative(feedDir(h), f)}`)
      }
      assert.equal((statSync(path.join(feedDir(h), 'shared', 'config', first)).mode & 0o777).toString(8), '700')
      assert.equal(appProcess(h).config, path.join(feedDir(h), 'shared', 'config', first, 'feedops.json'))
    }
  })

  it('a config that fails only on the hosts (a dead pooledUrl): the canary is switched back with its old config and serves again; a config failure, not a bad release', async () => {
    const dead = variant('dead-pooled', (env) => {
      env.shards.servers[0].pooledUrl = env.shards.servers[0].url.replace(/:\d+\//, ':1/')
      env.deploy.health.timeout = 12
    })
    const r = await feedops(['deploy', '--json'], dead)
    assert.equal(r.code, 1, why(r))
    const res = r.json as DeployResult
    const canary = res.hosts.find((h) => h.outcome === 'failed')
    assert.equal(canary?.host, 'app1', why(r))
    assert.match(canary!.error!, /^config failure: .*it runs, but cannot reach servers\.pg1: /)
    assert.equal(res.configFailure, true)
    assert.deepEqual(res.markedBad, [])
    assert.ok(!readdirSync(path.join(feedDir('app1'), 'releases', res.release)).includes('BAD'), 'not marked bad')
    assert.ok(res.hosts.filter((h) => h.host !== 'app1').every((h) => h.outcome === 'not-started'))
    // The canary runs the first release again, with the first release's config, and serves.
    assert.equal(currentOf('app1'), first)
    assert.equal(appProcess('app1').config, path.join(feedDir('app1'), 'shared', 'config', first, 'feedops.json'))
    assert.deepEqual(await servedAll(), hostNames().map(() => first))
    // A host that never ran the new release restarts fine: its config is untouched (the new one waits beside it).
    const pid = appProcess('app3').pid
    const restart = await feedops(['run', '--hosts', 'app3', '--json', '--', `FEEDOPS_START_TIMEOUT=20 "$HOME/feed/releases/${first}/node" "$HOME/feed/releases/${first}/pm.mjs" restart`])
    assert.equal(restart.code, 0, why(restart))
    assert.notEqual(appProcess('app3').pid, pid)
    assert.equal(await served('app3'), first)
  })

  it('a rollback brings back the config its release ran with', async () => {
    const changed = variant('second', (env) => (env.app.userCacheTtl = 301))
    const r = await feedops(['deploy', '--json'], changed)
    assert.equal(r.code, 0, why(r))
    second = (r.json as DeployResult).release
    assert.ok(readFileSync(path.join(feedDir('app2'), 'shared', 'config', second, 'feedops.json'), 'utf8').includes('"userCacheTtl": 301'))
    const back = await feedops(['rollback', '--json', '--to', first])
    assert.equal(back.code, 0, why(back))
    for (const h of hostNames()) {
      const {config: used} = appProcess(h)
      assert.equal(used, path.join(feedDir(h), 'shared', 'config', first, 'feedops.json'))
      assert.ok(!readFileSync(used, 'utf8').includes('userCacheTtl'), h)
    }
    assert.deepEqual(await servedAll(), hostNames().map(() => first))
  })

  it("a line appended to app.cjs on one host is named by releases --verify, refused by rollback, and warned of by the deploy's preflight", async () => {
    const clean = await feedops(['releases', '--verify', '--json'])
    assert.equal(clean.code, 0, why(clean))
    assert.ok(clean.json.verified.every((v: {ok: boolean}) => v.ok), JSON.stringify(clean.json.verified))
    for (const id of [first, second]) appendFileSync(path.join(feedDir('app2'), 'releases', id, 'app.cjs'), ';process.env.EVIL="1"\n')
    const seen = await feedops(['releases', '--verify', '--json'])
    assert.equal(seen.code, 1, why(seen))
    const rows = Object.fromEntries(seen.json.verified.map((v: {host: string}) => [v.host, v]))
    assert.equal(rows.app1.ok, true)
    assert.equal(rows.app3.ok, true)
    assert.equal(rows.app2.ok, false)
    assert.deepEqual(rows.app2.differs.map((d: string) => d.replace(/ \(sha256 .*/, '')), ['app.cjs differs from the manifest'])

    const refused = await feedops(['rollback', '--json', '--to', second])
    assert.equal(refused.code, 1, why(refused))
    assert.match(refused.json.error.message, new RegExp(`^Preflight: release ${second} differs on app2 from what was built, so rollback will not switch there: app2: app\\.cjs differs from the manifest .*; nothing was changed\\.$`))
    assert.deepEqual(hostNames().map(currentOf), hostNames().map(() => first))

    const next = await feedops(['deploy', '--json'])
    assert.equal(next.code, 0, why(next))
    const warnings = (next.json as DeployResult).warnings
    assert.equal(warnings.length, 1, warnings.join('\n'))
    assert.match(warnings[0]!, new RegExp(`^app2: its current release ${first} differs from what was built: app\\.cjs differs from the manifest`))
  })
})
