import assert from 'node:assert/strict'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {LabStatus} from '../../src/lab/index.js'
import {readProc} from '../../src/lab/process.js'
import {cli as runCli} from '../support/cli.js'
import {reserveTestNet} from '../support/lab.js'

/** The real CLI; a run ended by a signal is code 1. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{code: number; stdout: string; stderr: string}> {
  const r = await runCli(args, {env})
  return {code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr}
}

describe('feedops lab up/status/down', () => {
  let reserved: Awaited<ReturnType<typeof reserveTestNet>>
  let dir: string
  before(async () => {
    reserved = await reserveTestNet()
    dir = path.join(reserved.dir, 'lab')
  })
  after(async () => {
    await cli(['lab', 'down', '--dir', dir])
    reserved.release()
  })

  it('status before any up says there is no lab (exit 3)', async () => {
    const r = await cli(['lab', 'status', '--dir', dir])
    assert.equal(r.code, 3)
    assert.match(r.stdout, /No lab in /)
  })

  it('up --json returns the LabStatus on stdout', async () => {
    const r = await cli(['lab', 'up', '--dir', dir, '--net', String(reserved.net), '--hosts', '2', '--nginx', '0', '--postgres', '0',
      '--no-redis', '--no-memcached', '--no-cloud', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const status = JSON.parse(r.stdout) as LabStatus
    assert.equal(status.state, 'up')
    assert.equal(status.net, reserved.net)
    assert.deepEqual(status.processes.map((p) => [p.component, p.name, p.address, p.alive]), [
      ['sshd', 'app1', `127.${reserved.net}.1.1`, true],
      ['sshd', 'app2', `127.${reserved.net}.1.2`, true],
    ])
    assert.equal(status.configFile, path.join(dir, 'feedops.yml'))
  })

  it('up without flags keeps the lab as it is and prints the table and summary', async () => {
    const before = JSON.parse((await cli(['lab', 'status', '--dir', dir, '--json'])).stdout) as LabStatus
    const r = await cli(['lab', 'up', '--dir', dir])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^COMPONENT\s+NAME\s+ADDRESS\s+PID\s+STATE$/m)
    assert.match(r.stdout, /2 hosts, 0 Postgres\): 2\/2 processes up/)
    assert.match(r.stderr, /^lab: /m)
    const after = JSON.parse((await cli(['lab', 'status', '--dir', dir, '--json'])).stdout) as LabStatus
    assert.deepEqual(after.processes.map((p) => p.pid), before.processes.map((p) => p.pid))
  })

  it('the lab config works with feedops hosts and FEEDOPS_LAB_DIR, with no other flag', async () => {
    const r = await cli(['hosts', '--json'], {FEEDOPS_LAB_DIR: dir, FEEDOPS_CONFIG: ''})
    assert.equal(r.code, 0, r.stderr)
    const hosts = JSON.parse(r.stdout) as {name: string; address: string}[]
    assert.deepEqual(hosts.map((h) => [h.name, h.address]), [
      ['app1', `127.${reserved.net}.1.1`],
      ['app2', `127.${reserved.net}.1.2`],
    ])
  })

  it('bad input is rejected with exit code 2', async () => {
    const r = await cli(['lab', 'up', '--dir', dir, '--hosts', '999'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /^Error: hosts must be a whole number from 0 to 254 \(got 999\)/m)
  })

  it('status exits 1 when a process died; down stops the rest and exits 0; status then exits 3', async () => {
    const status = JSON.parse((await cli(['lab', 'status', '--dir', dir, '--json'])).stdout) as LabStatus
    const [app1, app2] = status.processes
    process.kill(app1!.pid!, 'SIGKILL')
    for (let i = 0; i < 100 && readProc(app1!.pid!) && readProc(app1!.pid!)!.state !== 'Z'; i++) await new Promise((r) => setTimeout(r, 20))
    const partial = await cli(['lab', 'status', '--dir', dir])
    assert.equal(partial.code, 1)
    assert.match(partial.stdout, new RegExp(`app1\\s+127\\.${reserved.net}\\.1\\.1:2222\\s+${app1!.pid}\\s+down`))

    const down = await cli(['lab', 'down', '--dir', dir, '--json'])
    assert.equal(down.code, 0, down.stderr)
    assert.equal((JSON.parse(down.stdout) as LabStatus).state, 'down')
    // Gone, or a zombie waiting for its new parent to reap it.
    assert.match(readProc(app2!.pid!)?.state ?? 'gone', /^(gone|Z)$/)
    assert.equal((await cli(['lab', 'status', '--dir', dir])).code, 3)
  })
})
