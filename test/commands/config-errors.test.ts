import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'

import {cli, type Ran} from '../support/cli.js'

/**
 * Config mistakes seen from the command line: exit 2, one sentence and a Fix line, no "Bug:" and no host
 * contacted. No lab: the inventory points at loopback addresses nothing listens on (127.4.9.x), so a
 * command that got as far as connecting would report those hosts as unreachable (exit 1) instead.
 */

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'feedops-cfgerr-'))
}

function config(dir: string, ssh: Record<string, unknown>, extra = ''): string {
  const file = path.join(dir, 'feedops.yml')
  writeFileSync(
    file,
    `environments:
  prod:
    ssh: ${JSON.stringify({sshConfig: false, knownHosts: 'known_hosts', connectTimeout: 2, ...ssh})}
    inventory:
      source: static
      hosts: [{name: web1, address: 127.4.9.1, port: 1}, {name: web2, address: 127.4.9.2, port: 1}]
${extra}`,
  )
  return file
}

function assertConfigError(r: Ran, message: RegExp): void {
  assert.equal(r.code, 2, r.stderr)
  assert.match(r.stderr, /^Error: .+\nFix: .+\n$/)
  assert.match(r.stderr, message)
  assert.doesNotMatch(r.stderr + r.stdout, /Bug:|web1|web2/)
}

describe('config errors on the command line', {timeout: 300_000}, () => {
  it('--config or $FEEDOPS_CONFIG naming a directory', async () => {
    const dir = tempDir()
    assertConfigError(await cli(['config', 'show', '--config', dir]), /Config file .* is a directory/)
    assertConfigError(await cli(['hosts'], {env: {FEEDOPS_CONFIG: dir}}), /Config file .* is a directory/)
  })

  it('an alias bomb', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'bomb.yml')
    writeFileSync(file, ['a: &a [x,x,x,x,x,x,x,x,x]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]'].join('\n'))
    assertConfigError(await cli(['config', 'show', '--config', file]), /Excessive alias count/)
  })

  it('ssh.knownHosts naming a directory', async () => {
    const dir = tempDir()
    mkdirSync(path.join(dir, 'kh'))
    assertConfigError(await cli(['run', '--config', config(dir, {knownHosts: 'kh'}), '--', 'true']), /known_hosts file \(ssh\.knownHosts\) .*kh is a directory/)
  })

  it('an identity file that is garbage, a directory or a public key: once, before any host', async () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'garbage'), 'not a key\n')
    mkdirSync(path.join(dir, 'keydir'))
    writeFileSync(path.join(dir, 'id.pub'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl feedops\n')
    for (const [key, message] of [
      ['garbage', /identity file \(ssh\.identityFile\) .*garbage is not a private key/],
      ['keydir', /identity file \(ssh\.identityFile\) .*keydir is a directory/],
      ['id.pub', /identity file \(ssh\.identityFile\) .*id\.pub is a public key/],
      ['missing', /identity file \(ssh\.identityFile\) .*missing does not exist/],
    ] as const) {
      const r = await cli(['run', '--config', config(dir, {identityFile: key}), '--', 'true'])
      assertConfigError(r, message)
      assert.equal(r.stderr.match(/identity file/g)?.length, 1)
    }
    const json = await cli(['run', '--config', config(dir, {identityFile: 'garbage'}), '--json', '--', 'true'])
    assert.equal(json.code, 2)
    assert.match(JSON.parse(json.stdout).error.message, /\(ssh\.identityFile\) .*garbage is not a private key/)
  })

  it('config show checks the app section with the app\'s own schema', async () => {
    const dir = tempDir()
    const bad = config(dir, {}, "    app: {cdnBase: 'ftp://cdn.example.com', prot: 1}\n")
    const r = await cli(['config', 'show', '--config', bad])
    assert.equal(r.code, 2, r.stdout)
    assert.match(r.stderr, /feedops\.yml: environments\.prod\.app is invalid: (cdnBase: .*; \(top level\): unknown key prot|.*prot)/)
    const good = config(dir, {}, "    app: {cdnBase: 'https://cdn.example.com', apiKey: 'k-S3cret'}\n")
    const unknown = await cli(['config', 'show', '--config', good])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown key apiKey/)
    assert.ok(!unknown.stderr.includes('k-S3cret'))
    // An app section without the sections the app needs is refused, as deploy refuses it.
    const alone = await cli(['config', 'show', '--config', config(dir, {}, "    app: {cdnBase: 'https://cdn.example.com', secret: app-secret-0123456789}\n")])
    assert.equal(alone.code, 2)
    assert.match(alone.stderr, /environments\.prod has no shards, redis, memcached section/)
    const sections = "    shards: {catalog: 'postgres://feed@db1/cat', servers: [{name: pg1, url: 'postgres://feed@db1/feed'}]}\n    redis: {url: 'redis://cache1:6379'}\n    memcached: {servers: ['cache1:11211']}\n"
    const ok = await cli(['config', 'show', '--json', '--config', config(dir, {}, `${sections}    app: {cdnBase: 'https://cdn.example.com', secret: app-secret-0123456789}\n`)])
    assert.equal(ok.code, 0, ok.stderr)
    const app = JSON.parse(ok.stdout).config.app
    assert.equal(app.secret, '***')
    assert.equal(app.port, 8080, 'defaults of the app section are shown')
  })

  it('hosts never prints credentials in aws.endpoint, in its error or its Fix line', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'feedops.yml')
    writeFileSync(
      file,
      `environments:
  prod:
    inventory: {source: ec2}
    aws: {region: us-east-1, endpoint: 'http://AKIDLAB:ep-S3cret@127.4.9.1:9', credentials: {accessKeyId: AKIDLAB, secretAccessKey: k-S3cret}}
`,
    )
    for (const args of [['hosts', '--config', file], ['hosts', '--config', file, '--json']]) {
      const r = await cli(args)
      assert.equal(r.code, 2, r.stderr + r.stdout)
      const out = r.stdout + r.stderr
      assert.match(out, /127\.4\.9\.1:9/)
      assert.ok(!out.includes('S3cret'), out)
    }
  })
})
