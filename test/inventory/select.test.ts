import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {hostsWithRole} from '../../src/cli/host-flags.js'
import {selectHosts, type Host} from '../../src/inventory/host.js'
import {UserError} from '../../src/errors.js'

const h = (name: string, address: string, roles = ['app']): Host => ({name, address, roles, tags: {}})

describe('host selection', () => {
  it('a --hosts entry that is one host\'s name and another\'s address is ambiguous: refused, naming both', () => {
    const all = [h('127.71.1.4', '127.71.1.9'), h('app4', '127.71.1.4'), h('app5', '127.71.1.5')]
    assert.throws(
      () => selectHosts(all, {hosts: ['127.71.1.4']}),
      (e: unknown) =>
        e instanceof UserError && e.exitCode === 2 && e.message === '--hosts 127.71.1.4 is ambiguous: it matches 127.71.1.4 (by name) and app4 (by address 127.71.1.4).',
    )
    // By name or by address when only one host matches.
    assert.deepEqual(selectHosts(all, {hosts: ['app4', '127.71.1.5']}).map((x) => x.name), ['app4', 'app5'])
    assert.deepEqual(selectHosts(all, {hosts: ['127.71.1.9']}).map((x) => x.name), ['127.71.1.4'])
    // A host named as its own address is no ambiguity.
    assert.deepEqual(selectHosts([h('10.0.0.1', '10.0.0.1')], {hosts: ['10.0.0.1']}).map((x) => x.name), ['10.0.0.1'])
    // Two hosts at one address, picked by that address.
    assert.throws(() => selectHosts([h('a', '10.0.0.2'), h('b', '10.0.0.2')], {hosts: ['10.0.0.2']}), /ambiguous: it matches a \(by address 10\.0\.0\.2\) and b \(by address 10\.0\.0\.2\)/)
  })

  it('a role no host has is named, with the size of the inventory and its roles', () => {
    const all = [h('app1', '10.0.0.1'), h('app2', '10.0.0.2'), h('db1', '10.0.0.3', ['db'])]
    assert.throws(() => hostsWithRole('nosuchrole', 'deploy.role in /x/feedops.yml')(all), (e: unknown) =>
      e instanceof UserError && e.message === 'No host has role "nosuchrole" (from deploy.role in /x/feedops.yml); the inventory has 3 hosts, with roles app, db.',
    )
    assert.throws(() => selectHosts(all, {role: 'web'}), /No host has role "web" \(from --role\); the inventory has 3 hosts/)
    assert.deepEqual(hostsWithRole('db', 'deploy.role')(all).map((x) => x.name), ['db1'])
  })
})
