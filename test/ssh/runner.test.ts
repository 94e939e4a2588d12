import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import {sshSchema, type SshSettings} from '../../src/config/schema.js'
import type {Host} from '../../src/inventory/host.js'
import {readState} from '../../src/lab/state.js'
import {ConnectionPool, runCommand, type HostResult} from '../../src/ssh/index.js'
import {startTestLab, type TestLab} from '../support/lab.js'

let lab: TestLab
let hosts: Host[]

function settings(over: Partial<SshSettings> = {}): SshSettings {
  return sshSchema.parse({
    user: 'root',
    port: 2222,
    identityFile: path.join(lab.dir, 'id_ed25519'),
    knownHosts: path.join(lab.dir, 'known_hosts'),
    sshConfig: false,
    connectTimeout: 5,
    ...over,
  })
}

async function run(line: string, opts: {ssh?: Partial<SshSettings>; on?: Host[]; timeoutMs?: number; acceptNew?: boolean} = {}) {
  const pool = await ConnectionPool.create(settings(opts.ssh), {acceptNew: opts.acceptNew ?? false})
  try {
    const results = await runCommand(opts.on ?? hosts, line, {pool, concurrency: 64, ...(opts.timeoutMs ? {timeoutMs: opts.timeoutMs} : {})})
    return {results, stats: {...pool.stats}}
  } finally {
    pool.close()
  }
}

const byHost = (results: HostResult[]) => new Map(results.map((r) => [r.host, r]))

/** A copy of the lab's known_hosts, edited. */
function knownHostsCopy(name: string, edit: (lines: string[]) => string[]): string {
  const lines = readFileSync(path.join(lab.dir, 'known_hosts'), 'utf8').trim().split('\n')
  const file = path.join(lab.dir, name)
  writeFileSync(file, edit(lines).join('\n') + '\n')
  return file
}

describe('parallel runner against real sshd hosts', {timeout: 240_000}, () => {
  before(async () => {
    lab = await startTestLab({hosts: 12})
    hosts = lab.layout.hosts.map((h) => ({name: h.name, address: h.address, roles: ['app'], tags: {}}))
  })
  after(() => lab?.stop())

  it('runs on 12 hosts at once, each with its own output, one connection per host', async () => {
    const {results, stats} = await run('echo "$FEEDOPS_HOST says hi"; echo to-stderr >&2')
    assert.equal(results.length, 12)
    for (const [i, r] of results.entries()) {
      assert.equal(r.host, `app${i + 1}`)
      assert.equal(r.address, lab.layout.hosts[i]!.address)
      assert.deepEqual([r.ok, r.status, r.exitCode, r.error], [true, 'ok', 0, null])
      assert.equal(r.stdout, `app${i + 1} says hi\n`)
      assert.equal(r.stderr, 'to-stderr\n')
      assert.ok(r.durationMs > 0)
    }
    assert.equal(stats.connections, 12)
  })

  it('reports a non-zero exit on the hosts where the command failed only', async () => {
    const {results} = await run('test "$FEEDOPS_HOST" != app2 && test "$FEEDOPS_HOST" != app7')
    const failed = results.filter((r) => !r.ok).map((r) => [r.host, r.exitCode, r.status])
    assert.deepEqual(failed, [['app2', 1, 'failed'], ['app7', 1, 'failed']])
  })

  it('kills a command that hangs past the timeout and reports it for that host only', async () => {
    const start = Date.now()
    const {results} = await run('if [ "$FEEDOPS_HOST" = app3 ]; then sleep 60; fi; echo done', {timeoutMs: 1500})
    assert.ok(Date.now() - start < 10_000, 'the run did not wait for the hanging command')
    const r = byHost(results)
    assert.deepEqual([r.get('app3')!.status, r.get('app3')!.ok, r.get('app3')!.exitCode], ['timeout', false, null])
    assert.equal(r.get('app3')!.error, 'timed out after 1.5 s')
    assert.ok(results.filter((x) => x.host !== 'app3').every((x) => x.ok && x.stdout === 'done\n'))

    // The hanging process itself is killed on the host (KILL over the channel), not left running.
    const marker = `${60 + (process.pid % 1000) / 1000}`
    const killed = await run(`if true; then sleep ${marker}; fi; echo not reached`, {on: hosts.slice(2, 3), timeoutMs: 1000})
    assert.equal(killed.results[0]!.status, 'timeout')
    let alive = true
    for (let i = 0; i < 30 && alive; i++) {
      alive = execFileSync('ps', ['-eo', 'args'], {encoding: 'utf8'}).split('\n').some((l) => l.trim() === `sleep ${marker}`)
      if (alive) await new Promise((r) => setTimeout(r, 100))
    }
    assert.equal(alive, false, 'the remote sleep was killed')
  })

  it('refuses a host whose key changed, naming the host and the known_hosts line', async () => {
    // app5's line now carries app6's key.
    const key6 = readFileSync(path.join(lab.dir, 'known_hosts'), 'utf8').split('\n').find((l) => l.includes(`${lab.layout.hosts[5]!.address}]`))!.split(' ').slice(1).join(' ')
    const file = knownHostsCopy('known_hosts.changed', (lines) =>
      lines.map((l) => (l.startsWith(`[${lab.layout.hosts[4]!.address}]:2222 `) ? `[${lab.layout.hosts[4]!.address}]:2222 ${key6}` : l)),
    )
    const {results} = await run('true', {ssh: {knownHosts: file}, acceptNew: true})
    const r5 = byHost(results).get('app5')!
    assert.equal(r5.status, 'refused')
    assert.match(r5.error!, /host key of app5 \(\[127\.\d+\.1\.5\]:2222\) CHANGED/)
    assert.match(r5.error!, new RegExp(`known_hosts\\.changed:5 has ssh-ed25519 SHA256:`))
    assert.ok(r5.error!.includes(key6.slice(0, 40)), 'the known_hosts line is quoted')
    assert.equal(results.filter((r) => r.ok).length, 11)
    // --accept-new never accepts a changed key, and leaves the file alone.
    assert.ok(readFileSync(file, 'utf8').split('\n').filter((l) => l.includes(key6)).length === 2)
  })

  it('refuses an unknown host, and records it (hashed like the file) with accept-new', async () => {
    const address = lab.layout.hosts[6]!.address
    const file = knownHostsCopy('known_hosts.missing', (lines) => lines.filter((l) => !l.startsWith(`[${address}]:`)))
    execFileSync('ssh-keygen', ['-H', '-f', file], {stdio: 'ignore'})
    const before = readFileSync(file, 'utf8')
    const refused = await run('true', {ssh: {knownHosts: file}})
    const r7 = byHost(refused.results).get('app7')!
    assert.equal(r7.status, 'refused')
    assert.match(r7.error!, /host key of app7 .* is not in .*known_hosts\.missing; refusing an unknown host \(use --accept-new/)
    assert.equal(readFileSync(file, 'utf8'), before)

    const accepted = await run('true', {ssh: {knownHosts: file}, acceptNew: true})
    assert.ok(accepted.results.every((r) => r.ok))
    const added = readFileSync(file, 'utf8').slice(before.length)
    assert.match(added, /^\|1\|[^ ]+ ssh-ed25519 [A-Za-z0-9+/=]+\n$/)
    assert.match(execFileSync('ssh-keygen', ['-F', `[${address}]:2222`, '-f', file], {encoding: 'utf8'}), /found: line 12/)
    // And now it is known without the flag.
    assert.ok((await run('true', {ssh: {knownHosts: file}})).results.every((r) => r.ok))
  })

  it('goes through a bastion: one bastion connection shared by every target, host keys checked on both', async () => {
    const bastion = lab.layout.hosts[0]!
    const targets = hosts.slice(1, 6)
    const logFile = path.join(lab.dir, 'logs', 'app1.log')
    const acceptedBefore = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.startsWith('Accepted publickey')).length
    const pool = await ConnectionPool.create(settings({jumpHost: `root@${bastion.address}:2222`}))
    try {
      const results = await runCommand(targets, 'echo $FEEDOPS_HOST $SSH_CLIENT', {pool, concurrency: 64})
      assert.ok(results.every((r) => r.ok), JSON.stringify(results.map((r) => r.error)))
      assert.ok(results.every((r) => r.via === `root@${bastion.address}:2222`))
      assert.deepEqual({...pool.stats}, {connections: 5, bastionConnections: 1, forwarded: 5})
      // The target saw a connection from the bastion's sshd, not from this process: the socket with the
      // client port the target reports belongs to an sshd process.
      const port = results[0]!.stdout.trim().split(' ')[2]!
      const owner = execFileSync('ss', ['-Htnp', 'state', 'established', `( sport = :${port} )`], {encoding: 'utf8'})
      assert.match(owner, /"sshd"/)
      assert.doesNotMatch(owner, new RegExp(`pid=${process.pid},`))
    } finally {
      pool.close()
    }
    const acceptedAfter = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.startsWith('Accepted publickey')).length
    assert.equal(acceptedAfter - acceptedBefore, 1, 'one login on the bastion for five targets')

    // The bastion's own key is verified too.
    const file = knownHostsCopy('known_hosts.nobastion', (lines) => lines.filter((l) => !l.startsWith(`[${bastion.address}]:`)))
    const {results} = await run('true', {ssh: {knownHosts: file, jumpHost: `root@${bastion.address}:2222`}, on: targets})
    assert.ok(results.every((r) => r.status === 'refused' && /via bastion .*host key of bastion .* is not in/.test(r.error!)), JSON.stringify(results.map((r) => r.error)))
  })

  it('honours an ssh config file: alias to HostName, Port, User and IdentityFile', async () => {
    const cfg = path.join(lab.dir, 'ssh_config')
    writeFileSync(cfg, [
      'Host lab-alias',
      `  HostName ${lab.layout.hosts[3]!.address}`,
      '  Port 2222',
      '  User root',
      `  IdentityFile ${path.join(lab.dir, 'id_ed25519')}`,
      '',
    ].join('\n'))
    // feedops.yml's own settings would not work: wrong user and port, and a key the hosts do not accept.
    const otherKey = path.join(lab.dir, 'id_other')
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey])
    const ssh = {sshConfig: cfg, user: 'nobody', port: 22, identityFile: otherKey}
    const alias: Host = {name: 'lab-alias', address: 'lab-alias', roles: [], tags: {}}
    const {results} = await run('echo $FEEDOPS_HOST $USER', {ssh, on: [alias]})
    assert.deepEqual([results[0]!.ok, results[0]!.stdout], [true, 'app4 root\n'])
    const direct: Host = {...alias, address: lab.layout.hosts[3]!.address}
    const wrongPort = await run('true', {ssh: {...ssh, sshConfig: false}, on: [direct]})
    assert.match(wrongPort.results[0]!.error!, /connection refused \(127\.\d+\.1\.4:22\)/)
    const wrongKey = await run('true', {ssh: {...ssh, sshConfig: false, user: 'root', port: 2222}, on: [direct]})
    assert.equal(wrongKey.results[0]!.status, 'refused')
    assert.match(wrongKey.results[0]!.error!, /authentication failed as root with .*id_other/)
  })

  it('runs two invocations at the same time', async () => {
    const [a, b] = await Promise.all([run('echo a'), run('echo b')])
    assert.ok(a.results.every((r) => r.ok && r.stdout === 'a\n'))
    assert.ok(b.results.every((r) => r.ok && r.stdout === 'b\n'))
  })

  it('reports a host whose sshd is stopped as unreachable while the others succeed', async () => {
    const state = readState(lab.dir)!
    const app9 = state.processes.find((p) => p.component === 'sshd' && p.name === 'app9')!
    assert.ok(app9.pid)
    process.kill(app9.pid, 'SIGTERM')
    for (let i = 0; i < 50; i++) {
      try {
        process.kill(app9.pid, 0)
        await new Promise((r) => setTimeout(r, 100))
      } catch {
        break
      }
    }
    const {results} = await run('uname -s')
    const r9 = byHost(results).get('app9')!
    assert.equal(r9.status, 'unreachable')
    assert.match(r9.error!, /connection refused \(127\.\d+\.1\.9:2222\)/)
    assert.equal(results.filter((r) => r.ok && r.stdout === 'Linux\n').length, 11)
  })
})
