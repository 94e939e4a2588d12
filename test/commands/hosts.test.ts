import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import type {Host} from '../../src/inventory/host.js'
import {appInstances, startFixtureCloud, type FixtureCloud} from '../inventory/cloud-fixture.js'
import {cli} from '../support/cli.js'
import {startTestLab, type TestLab} from '../support/lab.js'

describe('feedops hosts (the real CLI against an in-process cloud endpoint)', () => {
  let cloud: FixtureCloud
  let config: string
  before(async () => {
    cloud = await startFixtureCloud([
      ...appInstances(11),
      {instanceId: 'i-0db0000000000001', privateIp: '127.20.0.11', tags: {Name: 'db1', Role: 'db', Env: 'lab'}},
    ])
    config = path.join(cloud.dir, 'feedops.yml')
    writeFileSync(
      config,
      [
        'environments:',
        '  lab:',
        '    inventory: {source: ec2, filters: {Env: lab}}',
        `    aws: {region: us-east-1, endpoint: "${cloud.endpoint.url}", credentials: {accessKeyId: lab, secretAccessKey: lab}}`,
        '',
      ].join('\n'),
    )
  })
  after(async () => {
    await cloud.stop()
  })

  it('--json prints every host, naturally sorted, and exits 0', async () => {
    const run = await cli(['hosts', '--config', config, '--json'])
    assert.equal(run.code, 0, run.stderr)
    const hosts = JSON.parse(run.stdout) as Host[]
    assert.deepEqual(
      hosts.map((h) => h.name),
      ['app1', 'app2', 'app3', 'app4', 'app5', 'app6', 'app7', 'app8', 'app9', 'app10', 'app11', 'db1'],
    )
    assert.deepEqual(hosts[0], {
      name: 'app1',
      address: '127.20.1.1',
      roles: ['app'],
      tags: {Name: 'app1', Env: 'lab', Role: 'app'},
      instanceId: 'i-0lab000000000001',
    })
    assert.equal(run.stderr, '', 'nothing on stderr (no SDK warnings either)')
  })

  it('narrows with --role and --hosts and renders a table for people', async () => {
    const run = await cli(['hosts', '--config', config, '--role', 'app', '--hosts', 'app10,app2'])
    assert.equal(run.code, 0, run.stderr)
    const lines = run.stdout.trimEnd().split('\n')
    assert.match(lines[0]!, /^NAME\s+ADDRESS\s+ROLES\s+INSTANCE\s+TAGS$/)
    assert.match(lines[1]!, /^app10\s+127\.20\.1\.10\s+app\s+i-0lab000000000010\s+Name=app10 Env=lab Role=app$/)
    assert.match(lines[2]!, /^app2\s+127\.20\.1\.2\s+app\s+i-0lab000000000002\s+/)
    assert.equal(lines[3], '2 hosts')
  })

  it('exits 2 with a JSON error for an unknown role', async () => {
    const run = await cli(['hosts', '--config', config, '--role', 'cache', '--json'])
    assert.equal(run.code, 2)
    const out = JSON.parse(run.stdout) as {error: {message: string; fix: string; exitCode: number}}
    assert.equal(out.error.message, 'No host has role "cache" (from --role); the inventory has 12 hosts, with roles app, db.')
    assert.equal(out.error.fix, 'Use one of: app, db.')
    assert.equal(out.error.exitCode, 2)
  })

  it('exits 2 with Error/Fix lines for an unknown host', async () => {
    const run = await cli(['hosts', '--config', config, '--hosts', 'app12'])
    assert.equal(run.code, 2)
    assert.equal(run.stdout, '')
    assert.match(run.stderr, /^Error: Unknown host: app12\.\nFix: Run `feedops hosts` to see the names\.\n$/)
  })

  it('refuses a blank --hosts or --role (exit 2) instead of listing every host', async () => {
    for (const flags of [['--hosts', ''], ['--hosts', ','], ['--role', ' ']]) {
      const run = await cli(['hosts', '--config', config, ...flags])
      assert.equal(run.code, 2, flags.join(' '))
      assert.equal(run.stdout, '')
      assert.match(run.stderr, /^Error: --(hosts names no host|role is empty)/)
    }
  })
})

describe('feedops hosts with hostile EC2 tags', () => {
  it('shows control characters in tags escaped, and refuses a Name that would forge lines (exit 2, one line)', async () => {
    const cloud = await startFixtureCloud([
      {instanceId: 'i-0tag0000000000001', privateIp: '127.20.0.21', tags: {Name: 'web1', Role: 'web', Env: 'lab', Note: '\x1b[31mred\x1b[0m\rapp9'}},
      {instanceId: 'i-0bad0000000000001', privateIp: '127.20.0.22', tags: {Name: 'web2\nweb1  127.20.0.21', Env: 'bad'}},
    ])
    try {
      const config = path.join(cloud.dir, 'feedops.yml')
      const write = (env: string) =>
        writeFileSync(
          config,
          `environments:\n  lab:\n    inventory: {source: ec2, filters: {Env: ${env}}}\n` +
            `    aws: {region: us-east-1, endpoint: "${cloud.endpoint.url}", credentials: {accessKeyId: lab, secretAccessKey: lab}}\n`,
        )
      write('lab')
      const shown = await cli(['hosts', '--config', config])
      assert.equal(shown.code, 0, shown.stderr)
      assert.doesNotMatch(shown.stdout, /[\x00-\x08\x0b-\x1f\x7f]/, 'no control character reaches the terminal')
      // (XML turns the CR into a newline on the way)
      assert.match(shown.stdout, /^web1 .* Note=\\x1b\[31mred\\x1b\[0m\\[rn]app9$/m)
      const json = JSON.parse((await cli(['hosts', '--config', config, '--json'])).stdout) as Host[]
      assert.match(json[0]!.tags.Note!, /^\x1b\[31mred\x1b\[0m[\r\n]app9$/, '--json keeps the exact value (JSON escapes it)')

      write('bad')
      const refused = await cli(['hosts', '--config', config])
      assert.equal(refused.code, 2)
      assert.equal(refused.stdout, '')
      assert.match(refused.stderr, /^Error: EC2 instance i-0bad0000000000001 has a Name tag that is not a host name: "web2\\nweb1  127\.20\.0\.21" \(/)
      assert.equal(refused.stderr.split('\n').length, 3, 'Error and Fix lines only')
    } finally {
      await cloud.stop()
    }
  })
})

describe('feedops hosts on a real lab', () => {
  let lab: TestLab
  before(async () => {
    lab = await startTestLab({cloud: true, hosts: 3})
  })
  after(async () => {
    await lab?.stop()
  })

  it('lists the lab hosts from its EC2 endpoint with only --config', async () => {
    const run = await cli(['hosts', '--config', lab.configFile, '--json'])
    assert.equal(run.code, 0, run.stderr)
    const hosts = JSON.parse(run.stdout) as Host[]
    assert.deepEqual(
      hosts.map((h) => [h.name, h.address]),
      [1, 2, 3].map((k) => [`app${k}`, `127.${lab.net}.1.${k}`]),
    )
    assert.ok(hosts.every((h) => h.instanceId?.startsWith('i-') && h.roles.includes('app')))
  })
})
