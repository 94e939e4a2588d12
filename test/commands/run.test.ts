import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {parse, stringify} from 'yaml'

import {bin, cli} from '../support/cli.js'
import {startTestLab, type TestLab} from '../support/lab.js'

let lab: TestLab
const acceptedLogins = () =>
  lab.layout.hosts.reduce((n, h) => n + readFileSync(path.join(lab.dir, 'logs', `${h.name}.log`), 'utf8').split('\n').filter((l) => l.startsWith('Accepted')).length, 0)

/** A copy of the lab config next to it (so relative key paths still work), edited. */
function configCopy(name: string, edit: (env: Record<string, any>) => void): string {
  const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: {lab: Record<string, any>}}
  edit(doc.environments.lab)
  const file = path.join(lab.dir, name)
  writeFileSync(file, stringify(doc))
  return file
}

const staticInventory = (extra: {name: string; address: string}[] = []) => ({
  source: 'static',
  hosts: [...lab.layout.hosts.map((h) => ({name: h.name, address: h.address, roles: ['app']})), ...extra],
})

describe('feedops run', {timeout: 420_000}, () => {
  before(async () => {
    // The lab's own config: hosts come from its EC2 endpoint, as they would from AWS.
    lab = await startTestLab({hosts: 12, cloud: true})
  })
  after(() => lab?.stop())

  it('runs on every host, prefixing each line with the host, and ends with a summary on stderr', async () => {
    const r = await cli(['run', '--config', lab.configFile, '--', 'uname', '-s;', 'echo', '$FEEDOPS_HOST'])
    assert.equal(r.code, 0, r.stderr)
    const lines = r.stdout.trim().split('\n').sort()
    assert.equal(lines.length, 24)
    for (const h of lab.layout.hosts) {
      assert.ok(lines.includes(`${h.name} | Linux`), `${h.name} ran uname`)
      assert.ok(lines.includes(`${h.name} | ${h.name}`), `${h.name} expanded $FEEDOPS_HOST remotely`)
    }
    assert.match(r.stderr, /^HOST +EXIT +TIME +STATUS +ERROR$/m)
    assert.match(r.stderr, /^app12 +0 +\d+\.\d\d s +ok$/m)
    assert.match(r.stderr, /12 ok, 0 failed \(12 hosts\) in \d+\.\d+ s\n$/)
  })

  it('keeps stdout and stderr apart, and selects hosts by name', async () => {
    const r = await cli(['run', '--config', lab.configFile, '--hosts', 'app3,app1', '--', 'echo out; echo err >&2'])
    assert.equal(r.code, 0)
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['app1 | out', 'app3 | out'])
    assert.match(r.stderr, /^app1 \| err$/m)
    assert.match(r.stderr, /^app3 \| err$/m)
    assert.match(r.stderr, /2 ok, 0 failed \(2 hosts\)/)
  })

  it('gives per-host results with --json and exits 1 when some hosts failed', async () => {
    const r = await cli(['run', '--config', lab.configFile, '--json', '--', 'echo $FEEDOPS_HOST; test $FEEDOPS_HOST != app2'])
    assert.equal(r.code, 1)
    assert.equal(r.stderr, '', 'nothing but JSON, nothing on stderr')
    const out = JSON.parse(r.stdout)
    assert.equal(out.command, 'echo $FEEDOPS_HOST; test $FEEDOPS_HOST != app2')
    assert.deepEqual(out.summary, {hosts: 12, ok: 11, failed: 1, interrupted: 0})
    assert.equal(out.connections.connections, 12)
    const app2 = out.results.find((x: {host: string}) => x.host === 'app2')
    for (const key of ['host', 'address', 'ok', 'exitCode', 'signal', 'stdout', 'stderr', 'durationMs', 'error']) assert.ok(key in app2, key)
    assert.deepEqual([app2.ok, app2.exitCode, app2.stdout, app2.address], [false, 1, 'app2\n', lab.layout.hosts[1]!.address])
    assert.ok(out.results.filter((x: {ok: boolean}) => x.ok).length === 11)
  })

  it('prints --json whatever a host sends (10.5 MB here), keeping a bounded part per host and saying how much was cut', async () => {
    const big = 10_500_000
    const r = await cli(['run', '--config', lab.configFile, '--hosts', 'app1,app2', '--json', '--', `if [ $FEEDOPS_HOST = app1 ]; then head -c ${big} /dev/zero | tr '\\0' x; fi; echo end`])
    assert.equal(r.code, 0, r.stderr.slice(0, 2000))
    assert.equal(r.stderr, '')
    const out = JSON.parse(r.stdout) as {results: {host: string; stdout: string; truncated?: {stdout: number; stderr: number}}[]}
    const [app1, app2] = out.results
    const kept = 4 << 20
    assert.equal(app1!.stdout.length, kept)
    assert.match(app1!.stdout, /^x+$/)
    assert.deepEqual(app1!.truncated, {stdout: big + 'end\n'.length - kept, stderr: 0})
    assert.deepEqual([app2!.stdout, app2!.truncated], ['end\n', undefined])
  })

  it('shows control characters from remote output escaped, so no line passes for another host', async () => {
    const r = await cli(['run', '--config', lab.configFile, '--hosts', 'app1', '--', "printf 'ok\\rapp9 | forged\\n\\033[2Jgone\\ttab\\n'"])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.stdout.split('\n'), ['app1 | ok\\rapp9 | forged', 'app1 | \\x1b[2Jgone\ttab', ''])
    const grouped = await cli(['run', '--config', lab.configFile, '--hosts', 'app1', '--group', '--', "printf 'a\\033[31mb\\n'"])
    assert.match(grouped.stdout, /^a\\x1b\[31mb$/m)
  })

  it('groups output per host with --group', async () => {
    const r = await cli(['run', '--config', lab.configFile, '--role', 'app', '--group', '--', 'echo one; echo two'])
    assert.equal(r.code, 0)
    for (const h of lab.layout.hosts) assert.match(r.stdout, new RegExp(`── ${h.name} \\(exit 0, \\d+\\.\\d\\d s\\) ──\\none\\ntwo\\n`))
  })

  it('kills a command that runs past --timeout and reports it', async () => {
    const r = await cli(['run', '--config', lab.configFile, '--timeout', '1', '--', 'if [ $FEEDOPS_HOST = app4 ]; then sleep 30; fi; echo done'])
    assert.equal(r.code, 1)
    assert.ok(r.ms < 15_000)
    assert.match(r.stderr, /^app4 +(-|SIGKILL) +\d+\.\d\d s +timeout +timed out after 1 s$/m)
    assert.equal(r.stdout.trim().split('\n').length, 11)
  })

  it('rejects bad input before connecting to any host', async () => {
    const before = acceptedLogins()
    const cases: [string[], RegExp][] = [
      [['run', '--config', lab.configFile], /Error: No command to run\.\nFix: Put the command after `--`/],
      [['run', '--config', lab.configFile, '--role', 'db', '--', 'true'], /Error: No host has role "db" \(from --role\); the inventory has \d+ hosts, with role app\.\nFix: Use one of: app\./],
      [['run', '--config', lab.configFile, '--hosts', 'app1,app99', '--', 'true'], /Error: Unknown host: app99\./],
      [['run', '--config', lab.configFile, '--concurrency', '0', '--', 'true'], /Error: --concurrency must be between 1 and 1024; got "0"\./],
      [['run', '--config', lab.configFile, '--timeout', '-1', '--', 'true'], /Error: --timeout must be/],
      [['run', '--config', configCopy('badkey.yml', (env) => (env.ssh.identityFile = 'no-such-key')), '--', 'true'], /Error: The identity file .*no-such-key does not exist\./],
      [['run', '--config', configCopy('badjump.yml', (env) => (env.ssh.jumpHost = 'a@b,c@d')), '--', 'true'], /chains several bastions/],
      // what `--hosts "$UNSET"` becomes: never the whole fleet
      [['run', '--config', lab.configFile, '--hosts', '', '--', 'true'], /Error: --hosts names no host \(got ""\)\./],
      [['run', '--config', lab.configFile, '--hosts', ',', '--', 'true'], /Error: --hosts names no host/],
      [['run', '--config', lab.configFile, '--role', '', '--', 'true'], /Error: --role is empty\./],
      [['run', '--config', lab.configFile, '--concurrency', '1025', '--', 'true'], /Error: --concurrency must be between 1 and 1024; got "1025"\./],
      [['run', '--config', lab.configFile, '--connect-timeout', 'soon', '--', 'true'], /Error: Parsing --connect-timeout: Expected an integer but received: soon\./],
    ]
    for (const [args, pattern] of cases) {
      const r = await cli(args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, pattern)
      assert.doesNotMatch(r.stderr, /Bug:|\n\s+at /)
    }
    assert.equal(acceptedLogins(), before, 'no host was logged in to')
  })

  it('refuses unknown hosts unless --accept-new, which records them', async () => {
    const config = configCopy('fresh-known-hosts.yml', (env) => (env.ssh.knownHosts = 'known_hosts.fresh'))
    writeFileSync(path.join(lab.dir, 'known_hosts.fresh'), '')
    const refused = await cli(['run', '--config', config, '--hosts', 'app1,app2', '--', 'true'])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /app1 +- +\d+\.\d\d s +refused +host key of app1 \(\[127\.\d+\.1\.1\]:2222, ssh-ed25519 SHA256:\S+\) is not in \S+known_hosts\.fresh; refusing an unknown host \(use --accept-new to record it\)/)
    assert.equal(readFileSync(path.join(lab.dir, 'known_hosts.fresh'), 'utf8'), '')
    const accepted = await cli(['run', '--config', config, '--hosts', 'app1,app2', '--accept-new', '--', 'true'])
    assert.equal(accepted.code, 0, accepted.stderr)
    const lines = readFileSync(path.join(lab.dir, 'known_hosts.fresh'), 'utf8').trim().split('\n').sort()
    const lab12 = readFileSync(path.join(lab.dir, 'known_hosts'), 'utf8').trim().split('\n').slice(0, 2).sort()
    assert.deepEqual(lines.map((l) => l.split(' ').slice(0, 3).join(' ')), lab12.map((l) => l.split(' ').slice(0, 3).join(' ')))
    assert.equal((await cli(['run', '--config', config, '--hosts', 'app1,app2', '--', 'true'])).code, 0)
  })

  it('reports hosts that refuse or hang on connect while the others finish', async () => {
    // A listener that accepts TCP and never speaks SSH: a hanging host.
    const silent = net.createServer(() => {})
    const hangAddress = lab.layout.hosts[0]!.address.replace(/\.1$/, '.201')
    await new Promise<void>((resolve) => silent.listen(2222, hangAddress, resolve))
    try {
      const config = configCopy('ghosts.yml', (env) => {
        env.inventory = staticInventory([
          {name: 'ghost', address: lab.layout.hosts[0]!.address.replace(/\.1$/, '.200')},
          {name: 'hang', address: hangAddress},
        ])
      })
      const r = await cli(['run', '--config', config, '--connect-timeout', '3', '--json', '--', 'true'])
      assert.equal(r.code, 1)
      assert.ok(r.ms < 20_000)
      const out = JSON.parse(r.stdout)
      const get = (h: string) => out.results.find((x: {host: string}) => x.host === h)
      assert.deepEqual([get('ghost').status, get('ghost').ok], ['unreachable', false])
      assert.match(get('ghost').error, /connection refused \(127\.\d+\.1\.200:2222\)/)
      assert.deepEqual([get('hang').status, get('hang').error], ['unreachable', `connect timed out after 3 s (${hangAddress}:2222)`])
      assert.equal(out.summary.ok, 12)
    } finally {
      silent.close()
    }
  })

  it('runs two invocations side by side', async () => {
    const [a, b] = await Promise.all([
      cli(['run', '--config', lab.configFile, '--', 'echo a']),
      cli(['run', '--config', lab.configFile, '--', 'echo b']),
    ])
    assert.deepEqual([a.code, b.code], [0, 0])
    assert.equal(a.stdout.split('\n').filter((l) => / \| a$/.test(l)).length, 12)
    assert.equal(b.stdout.split('\n').filter((l) => / \| b$/.test(l)).length, 12)
  })

  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    it(`on ${sig} stops the command on every host before it reports, and exits 130`, async () => {
      // The hosts are sshd processes on this machine, so what they left running shows up here.
      const marker = `feedops-interrupt-${sig}-${process.pid}`
      const left = () => {
        try {
          return execFileSync('pgrep', ['-f', marker], {encoding: 'utf8'}).trim()
        } catch {
          return '' // pgrep exits 1 when nothing matches
        }
      }
      let sent = false
      const r = await cli(['run', '--config', lab.configFile, '--hosts', 'app1,app2,app3', '--', `echo started; sleep 30; echo ${marker}`], {
        onStdout: (text, child) => {
          if (!sent && text.split('\n').filter((l) => l.endsWith('| started')).length === 3) {
            sent = true
            setTimeout(() => child.kill(sig), 300)
          }
        },
      })
      assert.ok(sent, 'every host started the command')
      assert.equal(r.code, 130, r.stderr)
      assert.equal(left(), '', 'no remote command is left running')
      assert.doesNotMatch(r.stdout, new RegExp(marker))
      assert.match(r.stderr, new RegExp(`^${sig === 'SIGINT' ? 'Interrupted' : 'Terminated'}: closing every connection`, 'm'))
      assert.match(r.stderr, /0 ok, 0 failed, 3 interrupted \(3 hosts\)/)
      assert.doesNotMatch(r.stderr, /Bug:|\n\s+at /)
    })
  }

  it('on Ctrl-C closes every connection, says what finished and exits 130 without a stack trace', async () => {
    let sent = false
    const r = await cli(['run', '--config', lab.configFile, '--', 'if [ $FEEDOPS_HOST = app1 ]; then echo quick; else sleep 30; fi'], {
      onStdout: (text, child) => {
        if (!sent && text.includes('app1 | quick')) {
          sent = true
          setTimeout(() => child.kill('SIGINT'), 300)
        }
      },
    })
    assert.ok(sent, 'app1 answered before the interrupt')
    assert.equal(r.code, 130)
    assert.ok(r.ms < 15_000, `exited promptly (${r.ms} ms)`)
    assert.match(r.stderr, /Interrupted: closing every connection/)
    assert.match(r.stderr, /^app1 +0 +\d+\.\d\d s +ok$/m)
    assert.match(r.stderr, /^app7 +- +\S+( s)? +interrupted +interrupted$/m)
    assert.match(r.stderr, /1 ok, 0 failed, 11 interrupted \(12 hosts\)/)
    assert.doesNotMatch(r.stderr, /Bug:|\n\s+at /)
  })
})
