import assert from 'node:assert/strict'
import {execFileSync, type ChildProcess} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {parse, stringify} from 'yaml'

import {bin, cli} from '../support/cli.js'
import {startTestLab, type TestLab} from '../support/lab.js'

let lab: TestLab

function configWithExtraHosts(name: string, extra: {name: string; address: string}[]): string {
  const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: {lab: {inventory: {hosts: unknown[]}}}}
  doc.environments.lab.inventory.hosts.push(...extra.map((h) => ({...h, roles: ['app']})))
  const file = path.join(lab.dir, name)
  writeFileSync(file, stringify(doc))
  return file
}

describe('feedops play', {timeout: 240_000}, () => {
  before(async () => {
    lab = await startTestLab({hosts: 6})
  })
  after(() => lab?.stop())

  it('lists the playbooks, for people and as JSON, without needing a config', async () => {
    const r = await cli(['play', '--list'])
    assert.equal(r.code, 0)
    assert.match(r.stdout, /^check +Check that every host answers/m)
    assert.match(r.stdout, /^facts +Show OS, kernel, disk, memory, Node\.js version and uptime/m)
    const j = JSON.parse((await cli(['play', '--list', '--json'])).stdout)
    const check = j.playbooks.find((p: {name: string}) => p.name === 'check')
    assert.deepEqual(check.steps, ['kernel', 'disk space', 'memory', 'clock', 'temp dir writable'])
  })

  it('rejects an unknown or missing playbook name with exit 2, listing the names', async () => {
    const r = await cli(['play', 'deploy-everything', '--config', lab.configFile])
    assert.equal(r.code, 2)
    assert.equal(r.stderr, 'Error: No playbook named "deploy-everything".\nFix: Use one of: check, facts, nginx-reload, nginx-upstreams, provision (see `feedops play --list`).\n')
    const none = await cli(['play', '--config', lab.configFile])
    assert.equal(none.code, 2)
    assert.match(none.stderr, /Error: Which playbook\?\nFix: Name one: check, facts, nginx-reload, nginx-upstreams, provision/)
  })

  it('refuses a blank --hosts or --role (exit 2) before touching any host', async () => {
    for (const flags of [['--hosts', ''], ['--hosts', ' , '], ['--role', '']]) {
      const r = await cli(['play', 'facts', '--config', lab.configFile, ...flags])
      assert.equal(r.code, 2, flags.join(' '))
      assert.equal(r.stdout, '')
      assert.match(r.stderr, /^Error: --(hosts names no host|role is empty)/)
      assert.doesNotMatch(r.stderr, /app\d: /, 'no host was worked on')
    }
  })

  it('shows facts as plain per-host lines when stdout is not a terminal', async () => {
    const r = await cli(['play', 'facts', '--config', lab.configFile])
    assert.equal(r.code, 0, r.stderr)
    const lines = r.stdout.trim().split('\n')
    assert.equal(lines.length, 6)
    const os = execFileSync('sh', ['-c', '. /etc/os-release; echo "$PRETTY_NAME"'], {encoding: 'utf8'}).trim()
    for (const [i, line] of lines.entries()) {
      assert.match(line, new RegExp(`^app${i + 1} \\| os=${os.replace(/[()]/g, '\\$&')} \\| kernel=\\S+ \\| disk=.+ free of .+ \\| memory=.+ free of .+ \\| node=(v[\\d.]+|none) \\| uptime=\\S+`))
    }
    assert.match(r.stderr, /^facts: 6 ok, 0 failed \(6 hosts\) in \d+\.\d+ s, 6 connections\n$/m)
  })

  it('gives per-host, per-step results with --json, one connection per host for all five check steps', async () => {
    const r = await cli(['play', 'check', '--config', lab.configFile, '--json'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
    const out = JSON.parse(r.stdout)
    assert.equal(out.playbook, 'check')
    assert.deepEqual(out.summary, {hosts: 6, ok: 6, failed: 0, interrupted: 0})
    assert.equal(out.connections.connections, 6)
    for (const h of out.results) {
      assert.equal(h.steps.length, 5)
      assert.ok(h.steps.every((s: {ok: boolean}) => s.ok))
      assert.match(h.steps[0].value, /^Linux /)
    }
  })

  it('exits 1 and names the failure when a host cannot be reached; the others still run', async () => {
    const config = configWithExtraHosts('ghost.yml', [{name: 'ghost', address: lab.layout.hosts[0]!.address.replace(/\.1$/, '.200')}])
    const r = await cli(['play', 'check', '--config', config, '--hosts', 'app1,ghost,app2'])
    assert.equal(r.code, 1)
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'app1 | ok (5 steps, ' + /app1 \| ok \(5 steps, ([\d.]+ s)\)/.exec(r.stdout)![1] + ')',
      `ghost | FAILED connection refused (${lab.layout.hosts[0]!.address.replace(/\.1$/, '.200')}:2222)`,
      'app2 | ok (5 steps, ' + /app2 \| ok \(5 steps, ([\d.]+ s)\)/.exec(r.stdout)![1] + ')',
    ])
    assert.match(r.stderr, /check: 2 ok, 1 failed \(3 hosts\)/)
  })

  it('draws listr2 progress per host on a terminal, and a table', async () => {
    const cmd = `stty cols 200 rows 50; exec ${process.execPath} ${bin} play facts --config ${lab.configFile} --hosts app1,app2`
    let out: string
    try {
      out = execFileSync('script', ['-qfec', cmd, '/dev/null'], {encoding: 'utf8', env: {...process.env, FORCE_COLOR: '0', TERM: 'dumb'}, timeout: 60_000})
    } catch (err) {
      assert.fail(`script failed: ${(err as Error).message}`)
    }
    const text = out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    assert.match(text, /app1: done in \d+\.\d\d s/)
    assert.match(text, /app2: done in \d+\.\d\d s/)
    assert.match(text, /HOST +OS +KERNEL +DISK +MEMORY +NODE +UPTIME/)
    assert.match(text, /^app2 +\S.*\d+m\s*$/m)
  })

  it('on Ctrl-C stops waiting for a hanging host, reports it interrupted and exits 130', async () => {
    // A host that accepts TCP and never speaks SSH, with a long connect timeout: only Ctrl-C ends the wait.
    const hang = net.createServer(() => {})
    const address = lab.layout.hosts[0]!.address.replace(/\.1$/, '.201')
    await new Promise<void>((resolve) => hang.listen(2222, address, resolve))
    hang.on('connection', () => setTimeout(() => child?.kill('SIGINT'), 2000))
    let child: ChildProcess | undefined
    try {
      const config = configWithExtraHosts('hang.yml', [{name: 'hang', address}])
      const r = await cli(['play', 'check', '--config', config, '--connect-timeout', '60', '--json'], {onSpawn: (c) => (child = c)})
      assert.equal(r.code, 130)
      assert.ok(r.ms < 30_000, `exited promptly (${r.ms} ms)`)
      assert.doesNotMatch(r.stderr, /Bug:|\n\s+at /)
      const out = JSON.parse(r.stdout)
      assert.equal(out.interrupted, 'SIGINT')
      const hung = out.results.find((x: {host: string}) => x.host === 'hang')
      assert.deepEqual([hung.status, hung.error], ['interrupted', 'interrupted'])
      assert.equal(out.summary.failed, 0)
      assert.equal(out.summary.ok + out.summary.interrupted, 7)
    } finally {
      hang.close()
    }
  })
})
