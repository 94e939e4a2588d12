import assert from 'node:assert/strict'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {homedir, tmpdir, userInfo} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'

import {sshSchema} from '../../src/config/schema.js'
import {UserError} from '../../src/errors.js'
import type {Host} from '../../src/inventory/host.js'
import {loadSshConfigFile, parseJumpSpec, parseSshConfigText, resolveTarget} from '../../src/ssh/settings.js'

const host = (over: Partial<Host> = {}): Host => ({name: 'app1', address: '10.0.0.1', roles: [], tags: {}, ...over})
const ssh = (over: Record<string, unknown> = {}) => sshSchema.parse({sshConfig: false, ...over})

const config = parseSshConfigText(`
# per-host settings
Host 10.0.0.1
  User fromconfig
  Port 2200
  IdentityFile ~/.ssh/id_config
  IdentityFile /keys/%h_second

Host web-alias
  HostName 10.9.9.9
  User aliasuser

Host 10.0.0.7
  ProxyJump none

Host bastion
  HostName 10.0.0.254
  Port 2022
  User jumper

Host 10.0.0.8
  ProxyJump ops@bastion

Host *
  Port 2299
`)

describe('where and as whom to connect (precedence)', () => {
  it('uses defaults when nothing is configured', () => {
    const t = resolveTarget(host(), ssh())
    assert.equal(t.user, userInfo().username)
    assert.equal(t.port, 22)
    assert.equal(t.address, '10.0.0.1')
    assert.deepEqual(t.identityFiles, ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((k) => path.join(homedir(), '.ssh', k)))
    assert.equal(t.jump, undefined)
  })

  it('feedops.yml ssh section beats defaults', () => {
    const t = resolveTarget(host(), ssh({user: 'deploy', port: 2222, identityFile: '/k/id', jumpHost: 'ops@10.0.0.254:2022'}))
    assert.deepEqual([t.user, t.port, t.identityFiles], ['deploy', 2222, ['/k/id']])
    assert.deepEqual(t.jump && [t.jump.user, t.jump.address, t.jump.port], ['ops', '10.0.0.254', 2022])
  })

  it('the ssh config file beats feedops.yml', () => {
    const t = resolveTarget(host(), ssh({user: 'deploy', port: 2222, identityFile: '/k/id'}), config)
    assert.deepEqual([t.user, t.port], ['fromconfig', 2200])
    assert.deepEqual(t.identityFiles, [path.join(homedir(), '.ssh/id_config'), '/keys/10.0.0.1_second'])
  })

  it('the inventory host entry beats the ssh config file', () => {
    const t = resolveTarget(host({user: 'inv', port: 2201}), ssh({user: 'deploy'}), config)
    assert.deepEqual([t.user, t.port], ['inv', 2201])
  })

  it('resolves an alias through HostName, matching the inventory name when the address has no entry', () => {
    const t = resolveTarget(host({name: 'web-alias', address: 'web-alias'}), ssh({port: 2222}), config)
    assert.deepEqual([t.address, t.user, t.port], ['10.9.9.9', 'aliasuser', 2299])
    // Host * still applies when nothing more specific does; feedops.yml fills in the rest.
    const other = resolveTarget(host({name: 'db', address: '10.5.5.5'}), ssh({user: 'deploy'}), config)
    assert.deepEqual([other.user, other.port], ['deploy', 2299])
  })

  it('ProxyJump from the ssh config beats ssh.jumpHost, and ProxyJump none turns it off', () => {
    const jumped = resolveTarget(host({address: '10.0.0.8'}), ssh({jumpHost: 'other@10.1.1.1'}), config)
    // The bastion itself gets its ssh config entry (HostName, Port) but keeps the user the spec names.
    assert.deepEqual(jumped.jump && [jumped.jump.user, jumped.jump.address, jumped.jump.port, jumped.jump.spec], ['ops', '10.0.0.254', 2022, 'ops@bastion'])
    const direct = resolveTarget(host({address: '10.0.0.7'}), ssh({jumpHost: 'other@10.1.1.1'}), config)
    assert.equal(direct.jump, undefined)
    const fallback = resolveTarget(host({address: '10.0.0.50'}), ssh({jumpHost: 'other@10.1.1.1:22'}), config)
    assert.deepEqual(fallback.jump && [fallback.jump.user, fallback.jump.address, fallback.jump.port], ['other', '10.1.1.1', 22])
  })

  it('parses jump host specs and rejects bad ones as user errors', () => {
    assert.deepEqual(parseJumpSpec('root@127.0.1.1:2222'), {user: 'root', host: '127.0.1.1', port: 2222})
    assert.deepEqual(parseJumpSpec('bastion'), {host: 'bastion'})
    assert.deepEqual(parseJumpSpec('[::1]:2200'), {host: '::1', port: 2200})
    for (const bad of ['a@b,c@d', 'user@', 'host:99999', 'host:port']) {
      assert.throws(() => parseJumpSpec(bad), (e: unknown) => e instanceof UserError && e.exitCode === 2, bad)
    }
  })

  it('reads the ssh config file it is pointed at; a named file that is missing is a user error', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-sshcfg-'))
    const file = path.join(dir, 'config')
    writeFileSync(file, 'Host x\n  User y\n')
    const parsed = await loadSshConfigFile({sshConfig: file})
    assert.equal(resolveTarget(host({address: 'x'}), ssh(), parsed).user, 'y')
    assert.equal(await loadSshConfigFile({sshConfig: false}), undefined)
    await assert.rejects(loadSshConfigFile({sshConfig: path.join(dir, 'missing')}), (e: unknown) => e instanceof UserError && /Cannot read the ssh config/.test(e.message))
  })
})
