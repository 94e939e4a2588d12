import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import {environmentSchema, type EnvironmentConfig} from '../../src/config/schema.js'
import type {Host} from '../../src/inventory/host.js'
import {definePlaybook, runPlaybook, type PlaybookEvent} from '../../src/playbook/index.js'
import {ConnectionPool} from '../../src/ssh/index.js'
import facts from '../../playbooks/facts.js'
import {startTestLab, type TestLab} from '../support/lab.js'

let lab: TestLab
let hosts: Host[]
let env: EnvironmentConfig

async function play(playbook: Parameters<typeof runPlaybook>[0], opts: {on?: Host[]; timeoutMs?: number; events?: PlaybookEvent[]; jump?: string} = {}) {
  const ssh = opts.jump ? {...env.ssh, jumpHost: opts.jump} : env.ssh
  const pool = await ConnectionPool.create(ssh)
  try {
    return await runPlaybook(playbook, opts.on ?? hosts, {
      pool,
      config: env,
      concurrency: 16,
      ...(opts.timeoutMs ? {timeoutMs: opts.timeoutMs} : {}),
      onEvent: (e) => opts.events?.push(e),
    })
  } finally {
    pool.close()
  }
}

const fiveSteps = definePlaybook({
  name: 'five',
  description: 'five steps on one connection',
  steps: [
    {title: 'who', run: async (h) => (await h.run('echo $FEEDOPS_HOST')).stdout.trim()},
    {title: 'argv', run: async (h) => (await h.run(['printf', '%s|', "it's", '$HOME', 'a b'])).stdout},
    {title: 'sudo as root runs directly', run: async (h) => (await h.sudo(['id', '-u'])).stdout.trim()},
    {title: 'cwd and env', run: async (h) => (await h.run('echo "$GREETING from $(pwd)"', {cwd: '/tmp', env: {GREETING: 'hi there'}})).stdout.trim()},
    {title: 'config and host', run: (h) => `${h.host.name}@${h.host.address} user=${h.config.ssh.user}`},
  ],
})

describe('playbooks against real sshd hosts', {timeout: 180_000}, () => {
  before(async () => {
    lab = await startTestLab({hosts: 6})
    hosts = lab.layout.hosts.map((h) => ({name: h.name, address: h.address, roles: ['app'], tags: {}}))
    env = environmentSchema.parse({
      ssh: {user: 'root', port: 2222, identityFile: path.join(lab.dir, 'id_ed25519'), knownHosts: path.join(lab.dir, 'known_hosts'), sshConfig: false},
      inventory: {source: 'static', hosts: hosts.map((h) => ({name: h.name, address: h.address}))},
    })
  })
  after(() => lab?.stop())

  it('runs five steps per host over one connection per host and collects every value', async () => {
    const events: PlaybookEvent[] = []
    const run = await play(fiveSteps, {events})
    assert.equal(run.playbook, 'five')
    assert.deepEqual(run.summary, {hosts: 6, ok: 6, failed: 0, interrupted: 0})
    assert.equal(run.connections.connections, 6, 'one connection per host for all five steps')
    for (const [i, r] of run.results.entries()) {
      assert.equal(r.status, 'ok')
      assert.deepEqual(
        r.steps.map((s) => s.value),
        [`app${i + 1}`, "it's|$HOME|a b|", '0', 'hi there from /tmp', `app${i + 1}@${hosts[i]!.address} user=root`],
      )
      assert.ok(r.steps.every((s) => s.ok && s.status === 'ok' && s.error === null))
    }
    // Progress events: connecting, then each step in order, then done, for every host.
    const app1 = events.filter((e) => e.host.name === 'app1').map((e) => (e.type === 'step' ? `step ${e.index}` : e.type))
    assert.deepEqual(app1, ['connecting', 'step 0', 'step 1', 'step 2', 'step 3', 'step 4', 'done'])
  })

  it('stops a host at its failed step, skips the rest, and lets the other hosts finish', async () => {
    const failing = definePlaybook({
      name: 'failing',
      description: 'fails on app2',
      steps: [
        {title: 'first', run: async (h) => (await h.run('true')).exitCode},
        {title: 'check', run: async (h) => (await h.run('echo about to fail >&2; test "$FEEDOPS_HOST" != app2')).exitCode},
        {title: 'tolerated', run: async (h) => (await h.run(['false'], {allowFailure: true})).exitCode},
        {title: 'last', run: () => 'reached'},
      ],
    })
    const run = await play(failing)
    assert.deepEqual(run.summary, {hosts: 6, ok: 5, failed: 1, interrupted: 0})
    const app2 = run.results[1]!
    assert.deepEqual([app2.ok, app2.status], [false, 'failed'])
    assert.equal(app2.error, 'check: `echo about to fail >&2; test "$FEEDOPS_HOST" != app2` exited with 1: about to fail')
    assert.deepEqual(app2.steps.map((s) => s.status), ['ok', 'failed', 'skipped', 'skipped'])
    assert.deepEqual(run.results[0]!.steps.map((s) => s.value), [0, 0, 1, 'reached'])
  })

  it('times out a hanging step on one host', async () => {
    const slow = definePlaybook({
      name: 'slow',
      description: 'hangs on app3',
      steps: [{title: 'maybe hang', run: async (h) => (await h.run('[ "$FEEDOPS_HOST" != app3 ] || sleep 30')).exitCode}],
    })
    const started = Date.now()
    const run = await play(slow, {timeoutMs: 1000})
    assert.ok(Date.now() - started < 10_000)
    const app3 = run.results[2]!
    assert.equal(app3.status, 'timeout')
    assert.match(app3.error!, /maybe hang: .* timed out after 1 s/)
    assert.equal(run.summary.ok, 5)
  })

  it('copies files both ways over one SFTP session', async () => {
    const local = mkdtempSync(path.join(tmpdir(), 'feedops-sftp-'))
    const src = path.join(local, 'upstream.conf')
    writeFileSync(src, 'server 127.0.0.1:8080;\n')
    const copy = definePlaybook({
      name: 'copy',
      description: 'put, change, get',
      steps: [
        {title: 'put', run: (h) => h.put(src, `${lab.dir}/hosts/${h.host.name}/root/upstream.conf`)},
        {title: 'edit', run: (h) => h.run(['sh', '-c', 'echo "# $FEEDOPS_HOST" >> "$HOME/upstream.conf"'])},
        {title: 'get', run: (h) => h.get(`${lab.dir}/hosts/${h.host.name}/root/upstream.conf`, path.join(local, `${h.host.name}.conf`))},
      ],
    })
    const run = await play(copy, {on: hosts.slice(0, 2)})
    assert.ok(run.results.every((r) => r.ok), JSON.stringify(run.results.map((r) => r.error)))
    assert.equal(readFileSync(path.join(local, 'app2.conf'), 'utf8'), 'server 127.0.0.1:8080;\n# app2\n')
    const missing = definePlaybook({name: 'missing', description: 'd', steps: [{title: 'put', run: (h) => h.put(path.join(local, 'nope'), '/tmp/nope')}]})
    const failed = await play(missing, {on: hosts.slice(0, 1)})
    assert.equal(failed.results[0]!.status, 'failed')
    assert.match(failed.results[0]!.error!, /^put: .*nope/)
  })

  it('gathers facts through a bastion', async () => {
    const run = await play(facts, {on: hosts.slice(1), jump: `root@${hosts[0]!.address}:2222`})
    assert.deepEqual({...run.connections}, {connections: 5, bastionConnections: 1, forwarded: 5})
    for (const r of run.results) {
      assert.ok(r.ok, r.error ?? '')
      assert.equal(r.via, `root@${hosts[0]!.address}:2222`)
      assert.deepEqual(Object.keys(r.report!), ['os', 'kernel', 'disk', 'memory', 'node', 'uptime'])
      assert.match(r.report!.os!, /\S/)
      assert.match(r.report!.disk!, /free of .* used/)
      assert.match(r.report!.node!, /^(v\d+\.\d+\.\d+|none)$/)
    }
  })

  it('reports an unreachable host without running its steps', async () => {
    const ghost: Host = {name: 'ghost', address: lab.layout.hosts[0]!.address.replace(/\.1$/, '.250'), roles: [], tags: {}}
    const run = await play(fiveSteps, {on: [hosts[0]!, ghost]})
    assert.equal(run.results[0]!.ok, true)
    assert.deepEqual([run.results[1]!.status, run.results[1]!.steps.map((s) => s.status)], ['unreachable', ['skipped', 'skipped', 'skipped', 'skipped', 'skipped']])
    assert.match(run.results[1]!.error!, /connection refused/)
  })
})
