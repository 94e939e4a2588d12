import assert from 'node:assert/strict'
import {mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {parse, stringify} from 'yaml'

import {cacheKey} from '../../src/cli/cli-loader.js'
import {prefetchLocation} from '../../src/cli/prefetch-args.js'
import {cli} from '../support/cli.js'
import {startTestLab, type TestLab} from '../support/lab.js'

/** The phases of a --profile-start report, in the order they were reached, and the parts it says were loaded. */
function report(stderr: string): {phases: string[]; details: Record<string, string>; loaded: string[]} {
  const at = stderr.indexOf('start-up (')
  assert.ok(at >= 0, `a start-up report on stderr:\n${stderr}`)
  const lines = stderr.slice(at).split('\n').slice(1)
  const phases: string[] = []
  const details: Record<string, string> = {}
  let loaded: string[] = []
  for (const line of lines) {
    const l = /^ {2}loaded: (.*)$/.exec(line)
    if (l) {
      loaded = l[1]!.startsWith('(') ? [] : l[1]!.split(', ')
      break
    }
    const m = /^ {2}(.+?) +(\d+)(?: {2}(.*))?$/.exec(line)
    if (m) {
      phases.push(m[1]!)
      details[m[1]!] = m[3] ?? ''
    }
  }
  return {phases, details, loaded}
}

describe('the CLI start-up: one bundle, a code cache, only what the command uses', {timeout: 240_000}, () => {
  let lab: TestLab
  let cacheDir: string
  let staticConfig: string
  before(async () => {
    lab = await startTestLab({hosts: 3, cloud: true})
    cacheDir = mkdtempSync(path.join(tmpdir(), 'feedops-cli-cache-'))
    // One instance per DescribeInstances page, so the inventory arrives in three pages.
    const cloudFile = path.join(lab.dir, 'cloud.json')
    const cloud = JSON.parse(readFileSync(cloudFile, 'utf8')) as {ec2: {pageSize: number}}
    cloud.ec2.pageSize = 1
    writeFileSync(cloudFile, JSON.stringify(cloud, null, 2))
    const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: {lab: Record<string, unknown>}}
    doc.environments.lab.inventory = {source: 'static', hosts: lab.layout.hosts.map((h) => ({name: h.name, address: h.address, roles: ['app']}))}
    staticConfig = path.join(lab.dir, 'feedops-static.yml')
    writeFileSync(staticConfig, stringify(doc))
  })
  after(async () => {
    await lab?.stop()
    if (cacheDir) rmSync(cacheDir, {recursive: true, force: true})
  })

  it('--version and --help load no config, no schema, no SDK (FEEDOPS_TIMING=1)', async () => {
    for (const args of [['--version'], ['--help'], ['run', '--help'], ['hosts', '--help']]) {
      const r = await cli(args, {env: {FEEDOPS_TIMING: '1'}})
      assert.equal(r.code, 0, r.stderr)
      const {phases, details, loaded} = report(r.stderr)
      assert.deepEqual(phases, ['bundle'], `${args.join(' ')}: no command ran`)
      assert.match(details.bundle!, /^code cache: base /)
      for (const part of ['config', 'config schema', 'zod', 'yaml', 'aws-sdk', 'ssh2']) {
        assert.ok(!loaded.includes(part), `${args.join(' ')} loaded ${part}`)
      }
    }
  })

  it('`run --profile-start` reports config, inventory, first connect and first byte', async () => {
    const r = await cli(['run', '--config', lab.configFile, '--profile-start', '--', 'echo', 'hi'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim().split('\n').length, 3)
    const {phases, details, loaded} = report(r.stderr)
    for (const phase of ['bundle', 'command', 'config', 'inventory page', 'connect start', 'inventory', 'first connect', 'first byte']) {
      assert.ok(phases.includes(phase), `phase ${phase} in ${phases.join(', ')}`)
    }
    assert.equal(details.inventory, 'ec2, 3 hosts')
    assert.equal(details['inventory page'], '3 pages')
    // The config was read (and the inventory asked for) before oclif had loaded the command.
    assert.ok(phases.indexOf('config') < phases.indexOf('command'), phases.join(', '))
    assert.ok(loaded.includes('aws-sdk') && loaded.includes('ssh2'), loaded.join(', '))
  })

  it('without the head start, the hosts of each EC2 page are connected to as the page arrives', async () => {
    const r = await cli(['run', '--config', lab.configFile, '--', 'true'], {env: {FEEDOPS_TIMING: '1', FEEDOPS_PREFETCH: '0'}})
    assert.equal(r.code, 0, r.stderr)
    const {phases, details} = report(r.stderr)
    assert.equal(details['inventory page'], '3 pages')
    // The first page's host was being connected to before the last of the three pages came in.
    assert.ok(phases.indexOf('command') < phases.indexOf('config'), phases.join(', '))
    assert.ok(phases.indexOf('connect start') < phases.indexOf('inventory'), phases.join(', '))
  })

  it('`run` with a static inventory loads no AWS code', async () => {
    const r = await cli(['run', '--config', staticConfig, '--', 'true'], {env: {FEEDOPS_TIMING: '1'}})
    assert.equal(r.code, 0, r.stderr)
    const {details, loaded} = report(r.stderr)
    assert.equal(details.inventory, 'static, 3 hosts')
    assert.ok(loaded.includes('ssh2'), loaded.join(', '))
    assert.ok(!loaded.includes('aws-sdk'), loaded.join(', '))
  })

  it('a missing, then a corrupt code cache only costs speed: the command still works and the cache is made again', async () => {
    const env = {FEEDOPS_CLI_CACHE_DIR: cacheDir, FEEDOPS_TIMING: '1'}
    const hosts = () => cli(['hosts', '--config', lab.configFile, '--json'], {env})
    const first = await hosts()
    assert.equal(first.code, 0, first.stderr)
    assert.match(report(first.stderr).details.bundle!, /^code cache: none;/, 'no cache in an empty cache dir')
    const own = readdirSync(cacheDir).filter((f) => f.endsWith('.hosts.jsc'))
    assert.equal(own.length, 1, `the run wrote the hosts cache: ${readdirSync(cacheDir).join(', ')}`)
    const second = await hosts()
    assert.match(report(second.stderr).details.bundle!, /^code cache: hosts used;/)

    const file = path.join(cacheDir, own[0]!)
    const bytes = readFileSync(file)
    bytes.fill(0x5a, 0, 64)
    writeFileSync(file, bytes)
    const third = await hosts()
    assert.equal(third.code, 0, third.stderr)
    assert.match(report(third.stderr).details.bundle!, /^code cache: hosts rejected;/)
    assert.deepEqual(JSON.parse(third.stdout), JSON.parse(first.stdout))
    assert.equal(third.stderr.replace(/start-up \([\s\S]*$/, ''), '', 'nothing said about the cache')
    assert.match(report((await hosts()).stderr).details.bundle!, /^code cache: hosts used;/, 'written again')
  })

  it('a command that fails before it lists hosts does not wait for the inventory request it was given a head start on', async () => {
    // An endpoint that accepts connections and never answers.
    const sockets: net.Socket[] = []
    const silent = net.createServer((s) => void sockets.push(s))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: {lab: {aws: Record<string, unknown>}}}
    doc.environments.lab.aws.endpoint = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`
    const file = path.join(lab.dir, 'feedops-silent-ec2.yml')
    writeFileSync(file, stringify(doc))
    try {
      const r = await cli(['run', '--config', file], {env: {FEEDOPS_TIMING: '1'}, timeoutMs: 20_000})
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /No command to run/)
      assert.ok(r.ms < 10_000, `exited after ${r.ms} ms, not after the 30 s request timeout`)
      assert.ok(sockets.length > 0, 'the inventory request had been sent')
    } finally {
      for (const s of sockets) s.destroy()
      silent.close()
    }
  })

  it('runs unbundled with FEEDOPS_BUNDLE=0', async () => {
    const r = await cli(['hosts', '--config', staticConfig], {env: {FEEDOPS_BUNDLE: '0', FEEDOPS_TIMING: '1'}})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /start-up \(unbundled;/)
    assert.match(r.stdout, /3 hosts/)
  })

  it('reads the config early only for an unambiguous command line that lists hosts', () => {
    assert.deepEqual(prefetchLocation(['run', '--config', 'a.yml', '--env=prod', '--', 'uptime', '--config', 'b'], {}), {flag: 'a.yml', environment: 'prod'})
    assert.deepEqual(prefetchLocation(['hosts'], {}), {})
    assert.equal(prefetchLocation(['hosts', '--config', 'a', '--config=b'], {}), undefined)
    assert.equal(prefetchLocation(['run', '--help'], {}), undefined)
    assert.equal(prefetchLocation(['shards', 'map'], {}), undefined)
    assert.equal(prefetchLocation(['run'], {FEEDOPS_PREFETCH: '0'}), undefined)
  })

  it('picks a cache per command, and the base one for --version and any help', () => {
    assert.equal(cacheKey([]), 'base')
    assert.equal(cacheKey(['--version']), 'base')
    assert.equal(cacheKey(['run', '--help', '--', 'x']), 'base')
    assert.equal(cacheKey(['help', 'run']), 'base')
    assert.equal(cacheKey(['run', '--', '--help']), 'run')
    assert.equal(cacheKey(['shards', 'move', '12']), 'shards')
    assert.equal(cacheKey(['../evil']), 'base')
  })
})
