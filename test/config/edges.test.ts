/**
 * Config mistakes every command must refuse the same way, before it touches anything: blank --config, paths
 * that are not files, a file over 1 MiB, duplicate shard server names, bad deploy settings named by file and
 * key, deploy.path outside the home, an address with a port, and `config show` agreeing with the deploy.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'

import {deployPathProblem, homeProblem} from '../../src/config/deploy-path.js'
import {loadConfig, MAX_CONFIG_BYTES, parseConfigText} from '../../src/config/load.js'
import {checkAppConfig} from '../../src/deploy/app-config.js'
import {UserError} from '../../src/errors.js'
import {cli} from '../support/cli.js'

const dir = () => mkdtempSync(path.join(tmpdir(), 'feedops-edges-'))

/** A lab-like environment with every section the app needs; `extra` goes under the environment. */
function fileText(opts: {servers?: string; deploy?: string; app?: string; hosts?: string} = {}): string {
  return `environments:
  prod:
    ssh: {sshConfig: false, knownHosts: kh, connectTimeout: 2}
    inventory:
      source: static
      hosts: ${opts.hosts ?? '[{name: app1, address: 127.4.8.1, port: 1, roles: [app]}, {name: app2, address: 127.4.8.2, port: 1, roles: [app]}]'}
    shards:
      catalog: 'postgres://feed@127.4.8.9:1/cat'
      servers: ${opts.servers ?? "[{name: pg1, url: 'postgres://feed@127.4.8.9:1/feed'}]"}
    redis: {url: 'redis://127.4.8.9:1'}
    memcached: {servers: ['127.4.8.9:1']}
    app: ${opts.app ?? "{cdnBase: 'https://cdn.example.com', secret: app-secret-0123456789}"}
${opts.deploy ? `    deploy: ${opts.deploy}\n` : ''}`
}

function write(text: string): string {
  const d = dir()
  const file = path.join(d, 'feedops.yml')
  writeFileSync(path.join(d, 'kh'), '')
  writeFileSync(file, text)
  return file
}

const refuses = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof UserError && err.exitCode === 2 && pattern.test(err.message))

describe('config edges', {timeout: 400_000}, () => {
  it('a blank --config is bad input, not "not given"', async () => {
    refuses(() => loadConfig({flag: ''}), /^--config is empty\.$/)
    refuses(() => loadConfig({flag: '  '}), /^--config is empty\.$/)
    const r = await cli(['hosts', '--config', ''], {env: {FEEDOPS_CONFIG: write(fileText())}})
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^Error: --config is empty\.\nFix: /)
  })

  it('says what a config path is when it is not a file: /dev/null, a FIFO, a symlink loop, a dangling link', async () => {
    const d = dir()
    execFileSync('mkfifo', [path.join(d, 'fifo')])
    symlinkSync(path.join(d, 'loop-b'), path.join(d, 'loop-a'))
    symlinkSync(path.join(d, 'loop-a'), path.join(d, 'loop-b'))
    symlinkSync(path.join(d, 'nothing'), path.join(d, 'dangling'))
    refuses(() => loadConfig({envVars: {FEEDOPS_CONFIG: '/dev/null'}}), /^Config file \/dev\/null \(from \$FEEDOPS_CONFIG\) is a character device \(such as \/dev\/null\), not a file\.$/)
    refuses(() => loadConfig({flag: path.join(d, 'fifo')}), /fifo \(from --config\) is a named pipe \(FIFO\), not a file\.$/)
    refuses(() => loadConfig({flag: path.join(d, 'loop-a')}), /loop-a \(from --config\) is a symbolic link that loops/)
    refuses(() => loadConfig({flag: path.join(d, 'dangling')}), /dangling \(from --config\) is a symbolic link to nothing/)
    const r = await cli(['config', 'show'], {env: {FEEDOPS_CONFIG: '/dev/null'}})
    assert.equal(r.code, 2)
    assert.match(r.stderr, /is a character device/)
  })

  it('a config over 1 MiB is refused by its size before it is parsed', () => {
    const big = write(`${fileText()}# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`)
    refuses(() => loadConfig({flag: big}), /is 1\.0 MiB, over the 1 MiB a feedops\.yml may have; it was not read\./)
    // Just under the limit is read (and is valid).
    const fits = write(`${fileText()}# ${'x'.repeat(MAX_CONFIG_BYTES - fileText().length - 10)}\n`)
    assert.equal(loadConfig({flag: fits}).environment, 'prod')
  })

  it('two shard servers with one name are refused by the schema, naming both', () => {
    refuses(
      () => parseConfigText(fileText({servers: "[{name: pg1, url: 'postgres://a@h/x'}, {name: pg1, url: 'postgres://a@h2/x'}]"}), 'f.yml'),
      /^f\.yml is invalid: environments\.prod\.shards\.servers\.1\.name: "pg1" is also the name of servers\.0; each shard server needs its own name$/,
    )
  })

  it('a bad deploy.batch or deploy.maxFail names the file and the key, never a --batch nobody gave', async () => {
    refuses(() => parseConfigText(fileText({deploy: "{batch: '1,0'}"}), 'f.yml'), /^f\.yml is invalid: environments\.prod\.deploy\.batch: has "0", which is not a host count or a percentage above 0/)
    refuses(() => parseConfigText(fileText({deploy: "{maxFail: 'lots'}"}), 'f.yml'), /environments\.prod\.deploy\.maxFail: has "lots"/)
    const file = write(fileText({deploy: "{batch: '1,0'}"}))
    for (const args of [['deploy', '--dry-run'], ['config', 'show']]) {
      const r = await cli([...args, '--config', file])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /feedops\.yml is invalid: environments\.prod\.deploy\.batch: has "0"/)
      assert.doesNotMatch(r.stderr, /--batch/)
    }
  })

  it('deploy.path: / and one-component paths refused, others outside the home only with deploy.allowSystemPath', () => {
    assert.match(deployPathProblem('/', true)!, /is \/, the root/)
    assert.match(deployPathProblem('/srv', false)!, /fewer than two components/)
    assert.equal(deployPathProblem('/srv', true), undefined)
    assert.equal(deployPathProblem('/srv/feed', false), undefined) // in the home or not: the host says (homeProblem)
    assert.match(deployPathProblem('~', false)!, /home folder itself/)
    assert.match(deployPathProblem('feed', false)!, /neither absolute nor under ~\//)
    assert.match(deployPathProblem('~/../../etc', true)!, /has a \.\. in it/)
    assert.equal(deployPathProblem('~/feed', false), undefined)
    assert.match(homeProblem('/srv/feed', '/home/deploy', false)!, /outside the deploy user's home \/home\/deploy/)
    assert.equal(homeProblem('/srv/feed', '/home/deploy', true), undefined)
    assert.equal(homeProblem('/home/deploy/feed', '/home/deploy/', false), undefined)
    assert.match(homeProblem('/home/deploy', '/home/deploy', false)!, /outside/)
    assert.match(homeProblem('/home/deployer/feed', '/home/deploy', false)!, /outside/)
    refuses(() => parseConfigText(fileText({deploy: '{path: /}'}), 'f.yml'), /environments\.prod\.deploy\.path: is \/, the root of the file system/)
    refuses(() => parseConfigText(fileText({deploy: '{path: /srv}'}), 'f.yml'), /deploy\.path: is "\/srv", which has fewer than two components/)
    assert.equal(parseConfigText(fileText({deploy: '{path: /srv, allowSystemPath: true}'}), 'f.yml').environments.prod!.deploy!.path, '/srv')
  })

  it('an inventory address with a port in it is refused by the schema', () => {
    refuses(
      () => parseConfigText(fileText({hosts: '[{name: app1, address: "127.71.1.1:2222"}]'}), 'f.yml'),
      /environments\.prod\.inventory\.hosts\.0\.address: "127\.71\.1\.1:2222" has a port in it; write the address as 127\.71\.1\.1 and the port \(2222\) in the host's port field/,
    )
    refuses(() => parseConfigText(fileText({hosts: '[{name: "web1:22"}]'}), 'f.yml'), /hosts\.0\.name: "web1:22" has a port in it/)
    refuses(() => parseConfigText(fileText({hosts: '[{name: a, address: "[::1]:22"}]'}), 'f.yml'), /has a port in it; write the address as ::1/)
    assert.equal(parseConfigText(fileText({hosts: '[{name: a, address: "fd00::7", port: 22}]'}), 'f.yml').environments.prod!.inventory.source, 'static')
  })

  it('the deploy checks the config each host gets with the app\'s own start-up checks; config show makes the same ones', async () => {
    const loaded = loadConfig({flag: write(fileText())})
    const hosts = [{name: 'app1', address: '127.4.8.1', roles: ['app']}]
    const rendered = checkAppConfig(loaded, hosts, {})
    assert.ok(!rendered.get('app1')!.includes('app-secret-0123456789'), 'the secret is not in the rendered config')
    // Bad app keys, a secret too short in the environment, a section missing: refused here, by file and key.
    const badApp = loadConfig({flag: write(fileText({app: "{cdnBase: 'https://cdn.example.com', secret: app-secret-0123456789, poolMax: 0}"}))})
    refuses(() => checkAppConfig(badApp, hosts, {}), /environments\.prod\.app is invalid: poolMax: .*\(the app would refuse it at start; nothing was shipped\)/)
    refuses(() => checkAppConfig(loaded, hosts, {FEEDOPS_APP_SECRET: 'short'}), /\$FEEDOPS_APP_SECRET is shorter than 16 characters/)
    for (const [text, message] of [
      [fileText({servers: "[{name: pg1, url: 'postgres://a@h/x'}, {name: pg1, url: 'postgres://a@h2/x'}]"}), /servers\.1\.name: "pg1" is also the name/],
      [fileText({app: "{cdnBase: 'https://cdn.example.com', secret: app-secret-0123456789, poolMax: 0}"}), /app is invalid: poolMax/],
      [fileText({deploy: "{batch: '0'}"}), /deploy\.batch: has "0"/],
      [fileText({deploy: '{path: /}'}), /deploy\.path: is \//],
      [fileText({hosts: '[{name: app1, address: "127.4.8.1:22", roles: [app]}]'}), /has a port in it/],
      [fileText({hosts: '[{name: app1, address: 127.4.8.1, roles: [app]}, {name: app1, address: 127.4.8.2, roles: [app]}]'}), /more than one host with the same name/],
    ] as const) {
      const file = write(text)
      const [show, deploy] = await Promise.all([cli(['config', 'show', '--config', file]), cli(['deploy', '--dry-run', '--config', file])])
      assert.equal(show.code, 2, `config show said valid: ${show.stdout.slice(0, 200)}`)
      assert.match(show.stderr, message)
      assert.equal(deploy.code, 2, deploy.stderr)
      assert.match(deploy.stderr, message)
    }
    const ok = await cli(['config', 'show', '--json', '--config', write(fileText())])
    assert.equal(ok.code, 0, ok.stderr)
    assert.ok(JSON.parse(ok.stdout).checked.some((c: string) => /start-up checks .* for 2 hosts/.test(c)))
  })
})
