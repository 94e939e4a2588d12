import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {Redis} from 'ioredis'
import pg from 'pg'

import {readShardMap, updateShards, type ShardState} from '../../src/shards/catalog.js'
import {publishMapVersion} from '../../src/shards/map-events.js'
import {shardOfUser} from '../../src/shards/placement.js'
import {LOGICAL, SECRET, call, captureLogs, startApp, startAppLab, writeAppConfig, type AppLab, type RunningApp} from './helpers.js'

/** The app while the shard map changes under it, and the process's SIGTERM drain. */

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')

describe('feed app lifecycle', {timeout: 240_000}, () => {
  let env: AppLab
  let running: RunningApp
  let catalog: pg.Client
  let redis: Redis
  const {stream, logs} = captureLogs()

  /** Sets a shard's state through the catalog's CAS; publishes the new version unless told not to. */
  const setState = async (shard: number, state: ShardState, publish = true): Promise<number> => {
    const map = await readShardMap(catalog)
    const next = await updateShards(catalog, map.version, [{shard, state}])
    if (publish) await publishMapVersion(redis, next.version)
    return next.version
  }
  const appVersion = async (url: string) => (await call(url, 'GET', '/readyz')).body.mapVersion as number
  const newUser = async (url: string, name: string) => {
    const r = await call(url, 'POST', '/users', {body: {username: `${name}_${process.pid}`, name}})
    assert.equal(r.status, 201, JSON.stringify(r.body))
    return {id: r.body.user.id as string, token: r.body.token as string, shard: shardOfUser(BigInt(r.body.user.id), LOGICAL)}
  }

  before(async () => {
    env = await startAppLab()
    running = await startApp(env.config, stream)
    catalog = new pg.Client({connectionString: env.config.shards.catalog})
    await catalog.connect()
    redis = new Redis(env.config.redisUrl)
  })
  after(async () => {
    await catalog?.end()
    redis?.disconnect()
    await running?.stop()
    await env?.lab.stop()
  })

  it('sees a published map change within 1 s', async () => {
    const started = await appVersion(running.url)
    const t0 = performance.now()
    const version = await setState(5, 'moving')
    while ((await appVersion(running.url)) !== version) {
      assert.ok(performance.now() - t0 < 1000, 'not seen within 1 s')
      await sleep(20)
    }
    assert.ok(version > started)
    await setState(5, 'active')
  })

  it('sees an unpublished map change within 1 s (version poll)', async () => {
    const t0 = performance.now()
    const version = await setState(6, 'moving', false)
    while ((await appVersion(running.url)) !== version) {
      assert.ok(performance.now() - t0 < 1000, 'not seen within 1 s')
      await sleep(20)
    }
    await setState(6, 'active')
  })

  it('holds a write while its shard is frozen and lets it through after the thaw; reads go on', async () => {
    const u = await newUser(running.url, 'frozen_writer')
    await setState(u.shard, 'frozen')
    await sleep(100) // the app has the frozen map now
    const t0 = performance.now()
    const write = call(running.url, 'POST', '/photos', {token: u.token, body: {s3Key: 'held.jpg'}})
    const read = await call(running.url, 'GET', `/users/${u.id}`)
    assert.equal(read.status, 200)
    assert.ok(read.ms < 400, `read took ${read.ms} ms`)
    await sleep(500)
    await setState(u.shard, 'active')
    const r = await write
    const waited = performance.now() - t0
    assert.equal(r.status, 201, JSON.stringify(r.body))
    assert.ok(waited >= 500, `write returned after ${waited} ms`)
    assert.ok(waited < 1500, `write returned after ${waited} ms`)
  })

  it('fails a write held past the bound with 503 and Retry-After', async () => {
    const u = await newUser(running.url, 'frozen_long')
    await setState(u.shard, 'frozen')
    try {
      await sleep(100)
      const r = await call(running.url, 'POST', '/photos', {token: u.token, body: {s3Key: 'never.jpg'}})
      assert.equal(r.status, 503)
      assert.equal(r.headers.get('retry-after'), '2')
      assert.match(r.body.error.message, /frozen/)
      assert.ok(r.ms >= 1900, `gave up after ${r.ms} ms`)
      // Likes of a photo in that shard are writes too; the user's profile read is not.
      assert.equal((await call(running.url, 'GET', `/users/${u.id}`)).status, 200)
    } finally {
      await setState(u.shard, 'active')
    }
  })

  describe('the process (dist/app/main.js)', () => {
    let child: ChildProcess
    let out = ''
    let port = 0

    before(async () => {
      // Secret from the environment only; drain delay so readyz can be seen saying 503.
      const file = writeAppConfig(env.lab, {cdnBase: 'https://cdn.test.example', drainDelayMs: 400, freezeWaitMs: 5000}, 'app-proc.yml')
      child = spawn(process.execPath, [path.join(repo, 'dist/app/main.js'), '--config', file, '--host', '127.0.0.1', '--port', '0'], {
        env: {...process.env, FEEDOPS_APP_SECRET: SECRET},
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
      const t0 = Date.now()
      while (!port) {
        const m = /"port":(\d+).*"msg":"listening"/.exec(out)
        if (m) port = Number(m[1])
        else if (child.exitCode !== null || Date.now() - t0 > 20_000) throw new Error(`app did not start: ${out}`)
        else await sleep(50)
      }
    })
    after(() => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })

    it('rejects a bad flag with exit code 2', async () => {
      const bad = spawn(process.execPath, [path.join(repo, 'dist/app/main.js'), '--config', env.configFile, '--port', 'x'], {stdio: 'pipe'})
      let err = ''
      bad.stderr.on('data', (d: Buffer) => (err += d.toString()))
      const code = await new Promise<number | null>((r) => bad.on('exit', (c) => r(c)))
      assert.equal(code, 2, err)
      assert.match(err, /--port x|app section|secret/)
    })

    it('on SIGTERM: readyz 503 at once, the in-flight write finishes, then it exits 0', async () => {
      const url = `http://127.0.0.1:${port}`
      assert.equal((await call(url, 'GET', '/readyz')).status, 200)
      const u = await newUser(url, 'drain_writer')
      // A bearer that is the secret itself must not end up in the log either.
      assert.equal((await call(url, 'PUT', `/users/${u.id}/following/1`, {token: SECRET})).status, 401)
      // Make a request that stays in flight: its shard is frozen, so the write waits.
      await setState(u.shard, 'frozen')
      await sleep(150)
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
      const inFlight = call(url, 'POST', '/photos', {token: u.token, body: {s3Key: 'drain.jpg'}})
      await sleep(100)
      child.kill('SIGTERM')
      await sleep(50)
      const ready = await call(url, 'GET', '/readyz')
      assert.equal(ready.status, 503)
      assert.equal(ready.body.draining, true)
      await sleep(500) // past the drain delay: no new connections
      await assert.rejects(fetch(`${url}/healthz`))
      await setState(u.shard, 'active')
      const r = await inFlight
      assert.equal(r.status, 201, JSON.stringify(r.body))
      assert.equal(await exited, 0)
      assert.match(out, /"msg":"draining"/)
      assert.match(out, /"msg":"stopped"/)
      assert.ok(!out.includes(SECRET), 'secret in the process output')
      assert.ok(!out.includes(u.token), 'token in the process output')
    })
  })

  it('takes its port from systemd (socket activation): across a restart the port stays open, and a request sent meanwhile is answered by the next process', async () => {
    // A few lines of Python play systemd: they hold the listening socket as fd 3 and start the app with it
    // ("start"), or stop the one they started ("stop"), printing its pid or exit code. The holder never
    // accepts, as systemd does not.
    const holder = [
      'import os, signal, socket, subprocess, sys',
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(128); os.dup2(s.fileno(), 3)",
      'print(s.getsockname()[1], flush=True)',
      'log = open(sys.argv[1], "ab"); p = None',
      'for line in sys.stdin:',
      "    if line.strip() == 'start':",
      "        p = subprocess.Popen(['sh', '-c', 'LISTEN_FDS=1 LISTEN_PID=$$ exec \"$0\" \"$@\"', *sys.argv[2:]], pass_fds=(3,), stdin=subprocess.DEVNULL, stdout=log, stderr=log)",
      '        print(p.pid, flush=True)',
      '    else:',
      '        p.send_signal(signal.SIGTERM); print(p.wait(), flush=True)',
    ].join('\n')
    const file = writeAppConfig(env.lab, {cdnBase: 'https://cdn.test.example'}, 'app-activated.yml')
    const logFile = path.join(env.lab.dir, 'app-activated.log')
    const py = spawn('python3', ['-c', holder, logFile, process.execPath, path.join(repo, 'dist/app/main.js'), '--config', file], {
      env: {...process.env, FEEDOPS_APP_SECRET: SECRET},
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const lines: string[] = []
    py.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)))
    const answer = async (n: number) => {
      for (let i = 0; i < 600 && lines.length < n; i++) await sleep(50)
      return lines[n - 1]!
    }
    const listening = async (times: number) => {
      for (let i = 0; i < 600; i++) {
        if ((readFileSync(logFile, 'utf8').match(/"msg":"listening"/g) ?? []).length >= times) return
        await sleep(50)
      }
      assert.fail(`the app did not listen: ${readFileSync(logFile, 'utf8').slice(-2000)}`)
    }
    try {
      const url = `http://127.0.0.1:${await answer(1)}`
      py.stdin!.write('start\n')
      await answer(2)
      await listening(1)
      assert.equal((await call(url, 'GET', '/healthz')).status, 200)
      py.stdin!.write('stop\n')
      assert.equal(await answer(3), '0')
      // Nothing runs now, yet the connect succeeds: the request waits in the socket's queue.
      const waiting = fetch(`${url}/healthz`, {signal: AbortSignal.timeout(30_000)})
      await sleep(200)
      py.stdin!.write('start\n')
      await answer(4)
      await listening(2)
      assert.equal((await waiting).status, 200)
      py.stdin!.write('stop\n')
      assert.equal(await answer(5), '0')
    } finally {
      py.stdin!.end()
      py.kill()
    }
  })

  it('never logged the secret in-process either', () => {
    assert.ok(logs.lines.length > 10)
    assert.ok(!logs.text().includes(SECRET))
  })
})
