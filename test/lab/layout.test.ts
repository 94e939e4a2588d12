import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'
import {promisify} from 'node:util'
import pMap from 'p-map'

import {loadConfig} from '../../src/config/load.js'
import {pgbouncerKeepsPrepared} from '../../src/lab/components/pgbouncer.js'
import {writeLabConfig} from '../../src/lab/config-writer.js'
import {generateEd25519, knownHostsLine} from '../../src/lab/keys.js'
import {labLayout} from '../../src/lab/layout.js'

const run = promisify(execFile)

describe('lab layout', () => {
  it('puts hosts, Postgres, Redis, Memcached and the cloud endpoint on the contract addresses', () => {
    const l = labLayout(23, 3, 2)
    assert.deepEqual(
      l.hosts.map((h) => [h.name, h.address, h.port, h.instanceId]),
      [
        ['app1', '127.23.1.1', 2222, 'i-0lab02300000001'],
        ['app2', '127.23.1.2', 2222, 'i-0lab02300000002'],
        ['app3', '127.23.1.3', 2222, 'i-0lab02300000003'],
      ],
    )
    assert.deepEqual(
      l.postgres.map((p) => [p.name, p.address, p.port, p.url, p.catalogUrl]),
      [
        ['pg1', '127.23.0.1', 5433, 'postgres://postgres@127.23.0.1:5433/feedops', 'postgres://postgres@127.23.0.1:5433/feedops_catalog'],
        ['pg2', '127.23.0.1', 5434, 'postgres://postgres@127.23.0.1:5434/feedops', undefined],
      ],
    )
    assert.equal(l.redis.url, 'redis://127.23.0.1:6380')
    assert.equal(l.memcached.server, '127.23.0.1:11212')
    assert.equal(l.cloud.endpoint, 'http://127.23.0.1:4566')
    assert.equal(labLayout(0, 1, 0).hosts[0]!.instanceId, 'i-0lab00000000001')
    assert.deepEqual(l.nginx, [])
  })

  it('puts NGINX nodes on 127.N.2.K (sshd :2222, nginx :8080) and PgBouncers on 6433…, with ids apart from the app hosts', () => {
    const l = labLayout(23, 2, 2, 2)
    assert.deepEqual(
      l.nginx.map((h) => [h.name, h.address, h.port, h.httpPort, h.role, h.instanceId]),
      [
        ['nginx1', '127.23.2.1', 2222, 8080, 'nginx', 'i-0lab02302000001'],
        ['nginx2', '127.23.2.2', 2222, 8080, 'nginx', 'i-0lab02302000002'],
      ],
    )
    assert.deepEqual(l.hosts.map((h) => h.role), ['app', 'app'])
    assert.deepEqual(l.postgres.map((p) => p.pooled.url), ['postgres://postgres@127.23.0.1:6433/feedops', 'postgres://postgres@127.23.0.1:6434/feedops'])
  })

  it('writes a lab feedops.yml that the config loader accepts, with paths next to it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-labcfg-'))
    const file = writeLabConfig({dir, layout: labLayout(31, 2, 2), redis: true, memcached: true, cloud: true})
    const {env, environment} = loadConfig({flag: file})
    assert.equal(environment, 'lab')
    assert.equal(env.ssh.port, 2222)
    assert.equal(env.ssh.identityFile, path.join(dir, 'id_ed25519'))
    assert.equal(env.ssh.knownHosts, path.join(dir, 'known_hosts'))
    assert.equal(env.ssh.sshConfig, false)
    assert.deepEqual(env.inventory, {source: 'ec2', filters: {Env: 'lab'}, roleTag: 'Role', nameTag: 'Name', address: 'private'})
    assert.equal(env.aws.endpoint, 'http://127.31.0.1:4566')
    assert.deepEqual(env.aws.credentials, {accessKeyId: 'lab', secretAccessKey: 'lab'})
    assert.equal(env.shards?.catalog, 'postgres://postgres@127.31.0.1:5433/feedops_catalog')
    assert.deepEqual(env.shards?.servers.map((s) => s.url), [
      'postgres://postgres@127.31.0.1:5433/feedops',
      'postgres://postgres@127.31.0.1:5434/feedops',
    ])
    assert.equal(env.shards?.logical, 64)
    assert.equal(env.redis?.url, 'redis://127.31.0.1:6380')
    assert.deepEqual(env.memcached?.servers, ['127.31.0.1:11212'])
    assert.equal(env.lab?.dir, dir)
    assert.match(readFileSync(file, 'utf8'), /^# Written by `feedops lab up`/)
  })

  it('lists hosts statically when the cloud endpoint is off, and leaves out parts not running', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-labcfg-'))
    const file = writeLabConfig({dir, layout: labLayout(32, 2, 0), redis: false, memcached: false, cloud: false})
    const {env} = loadConfig({flag: file})
    assert.equal(env.inventory.source, 'static')
    assert.deepEqual(env.inventory.source === 'static' && env.inventory.hosts.map((h) => [h.name, h.address, h.roles]), [
      ['app1', '127.32.1.1', ['app']],
      ['app2', '127.32.1.2', ['app']],
    ])
    assert.equal(env.shards, undefined)
    assert.equal(env.redis, undefined)
    assert.equal(env.memcached, undefined)
  })

  it('lists NGINX nodes with role nginx, and with PgBouncer gives the app pooled URLs', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-labcfg-'))
    const file = writeLabConfig({dir, layout: labLayout(33, 1, 2, 1), redis: false, memcached: false, cloud: false, pgbouncer: true})
    const {env} = loadConfig({flag: file})
    assert.deepEqual(env.inventory.source === 'static' && env.inventory.hosts.map((h) => [h.name, h.address, h.roles]), [
      ['app1', '127.33.1.1', ['app']],
      ['nginx1', '127.33.2.1', ['nginx']],
    ])
    assert.deepEqual(env.shards?.servers.map((s) => [s.url, s.pooledUrl]), [
      ['postgres://postgres@127.33.0.1:5433/feedops', 'postgres://postgres@127.33.0.1:6433/feedops'],
      ['postgres://postgres@127.33.0.1:5434/feedops', 'postgres://postgres@127.33.0.1:6434/feedops'],
    ])
    // Debian 12's PgBouncer (1.18) cannot keep prepared statements in transaction pooling.
    assert.equal(env.app?.preparedStatements, pgbouncerKeepsPrepared() ? undefined : false)
    assert.equal(env.shards?.catalog, 'postgres://postgres@127.33.0.1:5433/feedops_catalog', 'the catalog is always direct')
  })

  it('knows which PgBouncer versions keep prepared statements (1.21 and later)', () => {
    assert.equal(pgbouncerKeepsPrepared([1, 18]), false)
    assert.equal(pgbouncerKeepsPrepared([1, 21]), true)
    assert.equal(pgbouncerKeepsPrepared([2, 0]), true)
    assert.equal(pgbouncerKeepsPrepared(null), false)
  })

  it('makes OpenSSH-format ed25519 keys and [host]:port known_hosts lines', () => {
    const k = generateEd25519('app7-host-key')
    assert.match(k.private, /^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END OPENSSH PRIVATE KEY-----\n$/)
    assert.match(k.public, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43} app7-host-key$/)
    assert.equal(Buffer.from(k.public.split(' ')[1]!, 'base64').length, 4 + 11 + 4 + 32)
    assert.equal(knownHostsLine('127.0.1.7', 2222, k.public), `[127.0.1.7]:2222 ${k.public.split(' ').slice(0, 2).join(' ')}`)
    assert.equal(knownHostsLine('10.0.0.1', 22, k.public).split(' ')[0], '10.0.0.1')
  })

  it('makes thousands of keys without hanging (Node 20 can deadlock exporting a generateKeyPairSync key)', async () => {
    // In a child process: a deadlocked thread cannot run this test's timers. The old way hung within a few
    // thousand keys; this many take a few seconds of CPU. The timeout only has to tell a hang from slow: on a
    // loaded 2-core machine (several test files and other builds at once) the same run has taken 40-60 s.
    const keysModule = new URL('../../src/lab/keys.js', import.meta.url).href
    const script = `const {generateEd25519} = await import(${JSON.stringify(keysModule)}); for (let i = 0; i < 10000; i++) generateEd25519('k' + i); console.log('made')`
    const {stdout} = await run(process.execPath, ['--input-type=module', '-e', script], {timeout: 180_000, killSignal: 'SIGKILL'})
    assert.equal(stdout.trim(), 'made')
  })

  it('every generated key reads back in ssh-keygen as the same public key, leading zero bytes included', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-keys-'))
    const firstByte = (k: {public: string}) => Buffer.from(k.public.split(' ')[1]!, 'base64')[19]
    // About 1 key in 256 has a public key starting with a zero byte (the case a bignum-style encoder gets wrong).
    const keys = Array.from({length: 19}, (_, i) => generateEd25519(`k${i}`))
    for (let i = 0; i < 20_000 && !keys.some((k) => firstByte(k) === 0); i++) keys.push(generateEd25519(`z${i}`))
    const tested = [...keys.slice(0, 19), ...keys.filter((k) => firstByte(k) === 0).slice(0, 1)]
    assert.equal(tested.length, 20)
    await pMap(
      tested,
      async (k, i) => {
        const file = path.join(dir, `k${i}`)
        writeFileSync(file, k.private, {mode: 0o600})
        const {stdout} = await run('ssh-keygen', ['-y', '-f', file])
        assert.equal(stdout.trim().split(' ').slice(0, 2).join(' '), k.public.split(' ').slice(0, 2).join(' '))
      },
      {concurrency: 4},
    )
  })
})
