import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import {after, before, describe, it} from 'node:test'
import pg from 'pg'

import {UserError} from '../../src/errors.js'
import {labDown, labStatus, labUp, type LabOptions, type LabStatus} from '../../src/lab/index.js'
import {labPaths} from '../../src/lab/layout.js'
import {isRecordedProcess, readProc} from '../../src/lab/process.js'
import {startTestLab, type TestLab} from '../support/lab.js'

function pids(status: LabStatus): Record<string, number | null> {
  return Object.fromEntries(status.processes.map((p) => [p.name, p.pid]))
}

function alive(pid: number): boolean {
  const info = readProc(pid)
  return info !== undefined && info.state !== 'Z'
}

async function sql(url: string, text: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({connectionString: url})
  await client.connect()
  try {
    return (await client.query(text)).rows
  } finally {
    await client.end()
  }
}

describe('lab lifecycle: idempotent up, restart, grow, shrink, down', () => {
  let lab: TestLab
  let opts: LabOptions
  before(async () => {
    lab = await startTestLab({hosts: 2, postgres: 1, redis: true})
    opts = {dir: lab.dir, net: lab.net, hosts: 2, postgres: 1, redis: true, memcached: false, cloud: false}
  })
  after(() => lab?.stop())

  it('up twice changes nothing: same pids, same keys', async () => {
    const first = await labStatus(lab.dir)
    assert.equal(first.state, 'up')
    assert.deepEqual(first.processes.map((p) => p.name), ['app1', 'app2', 'pg1', 'redis'])
    const knownHosts = readFileSync(labPaths.knownHosts(lab.dir), 'utf8')
    const again = await labUp(opts)
    assert.deepEqual(pids(again), pids(first))
    assert.equal(readFileSync(labPaths.knownHosts(lab.dir), 'utf8'), knownHosts)
  })

  it('status reports a killed process as down, and up restarts only that one', async () => {
    const before = pids(await labStatus(lab.dir))
    process.kill(before.app2!, 'SIGKILL')
    const deadline = Date.now() + 5000
    let status = await labStatus(lab.dir)
    while (status.processes.find((p) => p.name === 'app2')!.alive && Date.now() < deadline) status = await labStatus(lab.dir)
    assert.equal(status.state, 'partial')
    assert.equal(status.processes.find((p) => p.name === 'app2')!.alive, false)
    assert.equal(status.processes.find((p) => p.name === 'app1')!.alive, true)

    const after = pids(await labUp(opts))
    assert.notEqual(after.app2, before.app2)
    assert.ok(alive(after.app2!))
    assert.deepEqual({...after, app2: 0}, {...before, app2: 0})
    assert.equal((await labStatus(lab.dir)).state, 'up')
  })

  it('refuses to start on a port another process holds, and touches nothing', async () => {
    const before = pids(await labStatus(lab.dir))
    const squatter = net.createServer()
    await new Promise<void>((r) => squatter.listen(2222, `127.${lab.net}.1.3`, r))
    try {
      await assert.rejects(labUp({...opts, hosts: 3}), (err: unknown) => {
        assert.ok(err instanceof UserError)
        assert.match(err.message, new RegExp(`127\\.${lab.net}\\.1\\.3:2222 \\(app3\\) is already in use by a process this lab did not start`))
        return true
      })
    } finally {
      await new Promise((r) => squatter.close(r))
    }
    assert.deepEqual(pids(await labStatus(lab.dir)), before)
  })

  it('asking for more hosts adds them and keeps the running ones', async () => {
    const before = pids(await labStatus(lab.dir))
    const grown = await labUp({...opts, hosts: 4})
    assert.equal(grown.state, 'up')
    assert.deepEqual(grown.processes.map((p) => p.name), ['app1', 'app2', 'app3', 'app4', 'pg1', 'redis'])
    const now = pids(grown)
    for (const name of ['app1', 'app2', 'pg1', 'redis']) assert.equal(now[name], before[name])
    assert.equal(readFileSync(labPaths.knownHosts(lab.dir), 'utf8').trim().split('\n').length, 4)
    const cloud = JSON.parse(readFileSync(labPaths.cloudJson(lab.dir), 'utf8'))
    assert.deepEqual(cloud.ec2.instances.map((i: {privateIp: string}) => i.privateIp), [1, 2, 3, 4].map((k) => `127.${lab.net}.1.${k}`))
  })

  it('asking for fewer hosts stops the extras and keeps their folders', async () => {
    const before = pids(await labStatus(lab.dir))
    const shrunk = await labUp({...opts, hosts: 1})
    assert.deepEqual(shrunk.processes.map((p) => p.name), ['app1', 'pg1', 'redis'])
    assert.equal(pids(shrunk).app1, before.app1)
    for (const name of ['app2', 'app3', 'app4']) assert.equal(alive(before[name]!), false, `${name} still runs`)
    assert.equal(readFileSync(labPaths.knownHosts(lab.dir), 'utf8').trim().split('\n').length, 1)
    assert.ok(existsSync(labPaths.hostRoot(lab.dir, 'app4')))
  })

  it('two ups at once: one waits its turn with exit code 3', async () => {
    const results = await Promise.allSettled([labUp({...opts, hosts: 1}), labUp({...opts, hosts: 1})])
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    assert.equal(rejected.length, 1)
    assert.ok(rejected[0]!.reason instanceof UserError)
    assert.equal(rejected[0]!.reason.exitCode, 3)
  })

  it('down stops exactly the recorded pids, leaves a reused pid alone, and keeps data for the next up', async () => {
    await sql(lab.layout.postgres[0]!.url, 'CREATE TABLE IF NOT EXISTS kept (v int); INSERT INTO kept VALUES (42)')
    const before = await labStatus(lab.dir)

    // Simulate pid reuse: the Redis record now names a process the lab did not start.
    const stranger = spawn('sleep', ['300'], {stdio: 'ignore'})
    try {
      const redisPid = pids(before).redis!
      const state = JSON.parse(readFileSync(labPaths.state(lab.dir), 'utf8'))
      state.processes.find((r: {name: string}) => r.name === 'redis').pid = stranger.pid
      writeFileSync(labPaths.state(lab.dir), JSON.stringify(state))

      const down = await labDown(lab.dir)
      assert.equal(down.state, 'down')
      assert.ok(down.processes.every((p) => p.pid === null && !p.alive))
      for (const p of before.processes) if (p.name !== 'redis') assert.equal(alive(p.pid!), false, `${p.name} still runs`)
      assert.ok(alive(stranger.pid!), 'a process the lab did not start was signalled')
      process.kill(redisPid, 'SIGTERM') // the real Redis, orphaned by the edit above
      for (let i = 0; i < 200 && alive(redisPid); i++) await new Promise((r) => setTimeout(r, 25))
    } finally {
      stranger.kill()
    }

    const status = await labStatus(lab.dir)
    assert.equal(status.state, 'down')
    assert.ok(existsSync(labPaths.config(lab.dir)))

    const up = await labUp(opts)
    assert.equal(up.state, 'up')
    assert.deepEqual(await sql(lab.layout.postgres[0]!.url, 'SELECT v FROM kept'), [{v: 42}])
  })
})

describe('recorded process identity', () => {
  const id = {pid: 4242, startTime: 777, match: ['sshd', '/lab/app2/']}
  it('is the recorded process only with the same start time and command line, and not as a zombie', () => {
    assert.equal(isRecordedProcess({cmdline: '/usr/sbin/sshd -D -f /lab/app2/sshd_config', state: 'S', startTime: 777}, id), true)
    assert.equal(isRecordedProcess({cmdline: '/usr/sbin/sshd -D -f /lab/app2/sshd_config', state: 'S', startTime: 778}, id), false, 'pid reused')
    assert.equal(isRecordedProcess({cmdline: 'sleep 100', state: 'S', startTime: 777}, id), false, 'another program')
    assert.equal(isRecordedProcess({cmdline: '', state: 'Z', startTime: 777}, id), false, 'zombie')
    assert.equal(isRecordedProcess(undefined, id), false, 'gone')
  })

  it('counts a process that is being killed (memory freed, command line empty) as running until it is a zombie', () => {
    // It still holds its listening ports then: `lab up` waiting on it must not see the port as free yet.
    assert.equal(isRecordedProcess({cmdline: '', state: 'R', startTime: 777}, id), true)
    assert.equal(isRecordedProcess({cmdline: '', state: 'D', startTime: 778}, id), false)
  })
})
