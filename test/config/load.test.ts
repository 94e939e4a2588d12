import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'

import {loadConfig, parseConfigText} from '../../src/config/load.js'
import {redactSecrets} from '../../src/config/redact.js'
import {UserError} from '../../src/errors.js'
import {cli} from '../support/cli.js'

const good = `
defaultEnvironment: prod
environments:
  prod:
    ssh: {user: deploy, identityFile: keys/id, knownHosts: kh}
    inventory: {source: ec2, filters: {Env: prod}}
  staging:
    inventory:
      source: static
      hosts:
        - {name: web1, address: 10.0.0.1, roles: [app]}
`

function write(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'feedops-config-'))
  const file = path.join(dir, 'feedops.yml')
  writeFileSync(file, text)
  return file
}

function rejects(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseConfigText(text, 'feedops.yml'),
    (err: unknown) => err instanceof UserError && err.exitCode === 2 && pattern.test(err.message),
  )
}

describe('config', () => {
  it('loads the default environment, fills defaults and resolves paths next to the file', () => {
    const file = write(good)
    const cfg = loadConfig({flag: file})
    assert.equal(cfg.environment, 'prod')
    assert.equal(cfg.env.ssh.user, 'deploy')
    assert.equal(cfg.env.ssh.connectTimeout, 10)
    assert.equal(cfg.env.ssh.concurrency, 64)
    assert.equal(cfg.env.ssh.identityFile, path.join(path.dirname(file), 'keys/id'))
    assert.equal(cfg.env.ssh.knownHosts, path.join(path.dirname(file), 'kh'))
    assert.deepEqual(cfg.env.inventory, {source: 'ec2', filters: {Env: 'prod'}, roleTag: 'Role', nameTag: 'Name', address: 'private'})
  })

  it('selects an environment by name and rejects an unknown one', () => {
    const file = write(good)
    assert.equal(loadConfig({flag: file, environment: 'staging'}).env.inventory.source, 'static')
    assert.throws(() => loadConfig({flag: file, environment: 'qa'}), /Environment "qa" is not in .*prod, staging/)
  })

  it('names the key path of a wrong type', () => rejects(good.replace('user: deploy', 'user: 7'), /environments\.prod\.ssh\.user: expected string/))
  it('names an unknown key', () => rejects(good.replace('user: deploy', 'usr: deploy'), /environments\.prod\.ssh: unknown key usr/))
  it('rejects an unknown inventory source', () => rejects(good.replace('source: ec2', 'source: consul'), /environments\.prod\.inventory/))
  it('rejects a missing section', () => rejects('environments:\n  prod: {ssh: {}}\n', /environments\.prod\.inventory/))
  it('rejects an out-of-range port', () => rejects(good.replace('user: deploy', 'port: 70000'), /ssh\.port: Too big/))
  it('rejects broken YAML with its line', () => rejects('environments:\n  prod: [\n', /not valid YAML/))
  it('rejects duplicate keys', () => rejects(good.replace('  staging:', '  prod:'), /not valid YAML/))
  it('reads JSON (what a deploy writes for the app) as the same config, with the same checks', async () => {
    const {parse} = await import('yaml')
    const asJson = JSON.stringify(parse(good), null, 2)
    assert.deepEqual(parseConfigText(asJson, 'feedops.yml'), parseConfigText(good, 'feedops.yml'))
    rejects(asJson.replace('"user": "deploy"', '"user": 7'), /environments\.prod\.ssh\.user: expected string/)
    // Not JSON, though it starts as JSON would: read as YAML (a flow mapping).
    assert.equal(parseConfigText(`{defaultEnvironment: prod, environments: {prod: {inventory: {source: ec2}}}}`, 'f').defaultEnvironment, 'prod')
    rejects('{"environments": {"prod": [', /not valid YAML/)
  })
  it('rejects an empty file', () => rejects('', /\(top level\)|environments/))
  it('keeps the line and column of a YAML syntax error', () => rejects('environments:\n  prod: [\n', /not valid YAML at line 3, column 1: /))
  it('refuses an alias bomb as bad YAML, not a crash', () => {
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]']
    rejects(bomb.join('\n'), /feedops\.yml is not valid YAML: Excessive alias count/)
  })
  it('refuses an unknown tag instead of taking it as a string', () =>
    rejects(good.replace('user: deploy', 'user: !include /etc/passwd'), /not valid YAML at line 5, column 17: Unresolved tag: !include/))
  it('names the key of a defaultEnvironment that is not defined', () =>
    assert.throws(() => loadConfig({flag: write(good.replace('defaultEnvironment: prod', 'defaultEnvironment: qa'))}), /feedops\.yml: defaultEnvironment is "qa", which is not under environments/))
  it('refuses a config path that is a directory, from --config or $FEEDOPS_CONFIG', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-dir-'))
    const isDir = (err: unknown) => err instanceof UserError && err.exitCode === 2 && /^Config file (.*) \(from (--config|\$FEEDOPS_CONFIG)\) is a directory, not a file\.$/.exec(err.message)?.[1] === dir
    assert.throws(() => loadConfig({flag: dir}), isDir)
    assert.throws(() => loadConfig({envVars: {FEEDOPS_CONFIG: dir}}), isDir)
    // ./feedops.yml that is a directory is no candidate.
    mkdirSync(path.join(dir, 'feedops.yml'))
    assert.throws(() => loadConfig({cwd: dir, envVars: {FEEDOPS_LAB_DIR: path.join(dir, 'none')}}), /No feedops.yml in/)
  })
  it('says so when no file exists', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-empty-'))
    assert.throws(() => loadConfig({cwd: dir, envVars: {}}), /No feedops.yml in/)
    assert.throws(() => loadConfig({flag: 'nope.yml', cwd: dir, envVars: {}}), /does not exist/)
  })

  it('config show never prints a secret: app secret, AWS secret key, URL passwords', async () => {
    const file = write(`
environments:
  prod:
    inventory: {source: ec2, filters: {Env: prod}}
    aws: {region: us-east-1, credentials: {accessKeyId: AKIDEXAMPLE, secretAccessKey: wJalrXUtnFEMIsecretKEY}}
    shards:
      catalog: postgres://feed:pgS3cret@db1/catalog
      servers: [{name: pg1, url: 'postgres://feed:pgS3cret@db1/feed'}]
    redis: {url: 'redis://:r3disPass@cache1:6379'}
    memcached: {servers: ['cache1:11211']}
    app: {cdnBase: 'https://cdn.example.com', secret: app-secret-0123456789}
`)
    const r = await cli(['config', 'show', '--config', file, '--json'])
    assert.equal(r.code, 0, r.stderr)
    for (const secret of ['wJalrXUtnFEMIsecretKEY', 'pgS3cret', 'r3disPass', 'app-secret-0123456789']) {
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), `${secret} printed`)
    }
    const shown = JSON.parse(r.stdout).config
    assert.equal(shown.aws.credentials.accessKeyId, 'AKIDEXAMPLE')
    assert.equal(shown.aws.credentials.secretAccessKey, '***')
    assert.equal(shown.shards.servers[0].url, 'postgres://feed:***@db1/feed')
    assert.equal(shown.redis.url, 'redis://:***@cache1:6379')
    assert.equal(shown.app.secret, '***')
    assert.deepEqual(redactSecrets({url: 'postgres://feed@db1/feed', n: 3}), {url: 'postgres://feed@db1/feed', n: 3})
  })
})
