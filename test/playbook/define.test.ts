import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {UserError} from '../../src/errors.js'
import type {Host} from '../../src/inventory/host.js'
import {definePlaybook, findPlaybook, playbookHosts, RemoteCommandError} from '../../src/playbook/index.js'
import {playbooks} from '../../playbooks/index.js'
import {formatKiB, formatUptime, parseDf, parseMeminfo, parseOsRelease} from '../../playbooks/facts.js'

const h = (name: string, roles: string[]): Host => ({name, address: `10.0.0.${name.slice(-1)}`, roles, tags: {}})
const inventory = [h('app1', ['app']), h('app2', ['app']), h('web1', ['nginx'])]

describe('playbooks', () => {
  it('validates definitions', () => {
    const step = {title: 'one', run: () => 1}
    assert.equal(definePlaybook({name: 'ok-name', description: 'd', steps: [step]}).name, 'ok-name')
    assert.throws(() => definePlaybook({name: 'Bad Name', description: 'd', steps: [step]}), /lower-case/)
    assert.throws(() => definePlaybook({name: 'empty', description: 'd', steps: []}), /no steps/)
    assert.throws(() => definePlaybook({name: 'dup', description: 'd', steps: [step, step]}), /two steps titled "one"/)
  })

  it('the registry ships facts and check with unique names; an unknown name is a user error listing them', () => {
    const names = playbooks.map((p) => p.name)
    assert.ok(names.includes('facts') && names.includes('check'))
    assert.equal(new Set(names).size, names.length)
    assert.equal(playbooks.find((p) => p.name === 'check')!.steps.length, 5)
    assert.equal(findPlaybook(playbooks, 'facts').name, 'facts')
    assert.throws(
      () => findPlaybook(playbooks, 'nope'),
      (e: unknown) => e instanceof UserError && e.exitCode === 2 && /No playbook named "nope"/.test(e.message) && /check, facts/.test(e.fix ?? ''),
    )
  })

  it('runs on --role/--hosts, else on the roles the playbook names, else everywhere', () => {
    const byRole = definePlaybook({name: 'web', description: 'd', roles: ['nginx'], steps: [{title: 's', run: () => 0}]})
    const anywhere = definePlaybook({name: 'any', description: 'd', steps: [{title: 's', run: () => 0}]})
    assert.deepEqual(playbookHosts(byRole, inventory, {}).map((x) => x.name), ['web1'])
    assert.deepEqual(playbookHosts(byRole, inventory, {role: 'app'}).map((x) => x.name), ['app1', 'app2'])
    assert.deepEqual(playbookHosts(anywhere, inventory, {hosts: ['app2']}).map((x) => x.name), ['app2'])
    assert.deepEqual(playbookHosts(anywhere, inventory, {}).length, 3)
    const none = definePlaybook({name: 'db', description: 'd', roles: ['db'], steps: [{title: 's', run: () => 0}]})
    assert.throws(() => playbookHosts(none, inventory, {}), (e: unknown) => e instanceof UserError && /roles playbook db runs on \(db\)/.test(e.message))
    assert.throws(() => playbookHosts(anywhere, inventory, {hosts: ['zzz']}), UserError)
  })

  it('says what failed in a remote command error', () => {
    const err = new RemoteCommandError({command: 'test -d /x', stdout: '', stderr: 'oops\nno such dir\n', exitCode: 1, signal: null, ok: false, durationMs: 3})
    assert.equal(err.message, '`test -d /x` exited with 1: no such dir')
  })
})

describe('facts parsing', () => {
  it('reads os-release', () => {
    assert.equal(parseOsRelease('NAME="Debian GNU/Linux"\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'), 'Debian GNU/Linux 12 (bookworm)')
    assert.equal(parseOsRelease("NAME='Alpine Linux'\nVERSION_ID=3.20.1\n"), 'Alpine Linux 3.20.1')
    assert.equal(parseOsRelease(''), 'unknown')
  })

  it('reads df -Pk, including mount points with spaces, and refuses garbage', () => {
    const df = 'Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/vda1        263174212 190000000  73174212      73% /srv/my disk\n'
    assert.deepEqual(parseDf(df), {mount: '/srv/my disk', totalKiB: 263174212, availKiB: 73174212, usedPercent: 73})
    assert.throws(() => parseDf('df: /nope: No such file or directory'), /unexpected df output/)
  })

  it('reads /proc/meminfo and formats sizes and uptimes', () => {
    assert.deepEqual(parseMeminfo('MemTotal:       16318412 kB\nMemFree:          512000 kB\nMemAvailable:    8159206 kB\n'), {totalKiB: 16318412, availableKiB: 8159206})
    assert.deepEqual(parseMeminfo('MemTotal: 1000 kB\nMemFree: 10 kB\n'), {totalKiB: 1000, availableKiB: 10})
    assert.throws(() => parseMeminfo('nothing'), /MemTotal/)
    assert.equal(formatKiB(16318412), '16 GiB')
    assert.equal(formatKiB(1536), '1.5 MiB')
    assert.equal(formatKiB(512), '512 KiB')
    assert.equal(formatUptime(3 * 86400 + 4 * 3600 + 5 * 60 + 7), '3d 4h 5m')
    assert.equal(formatUptime(3725), '1h 2m')
    assert.equal(formatUptime(59), '0m')
  })
})
