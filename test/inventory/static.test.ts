import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {environmentSchema} from '../../src/config/schema.js'
import {UserError} from '../../src/errors.js'
import {loadInventory, selectHosts, type Host} from '../../src/inventory/index.js'
import {compareHostNames} from '../../src/inventory/sort.js'

function staticEnv(hosts: unknown[]) {
  return environmentSchema.parse({inventory: {source: 'static', hosts}})
}

const env = staticEnv([
  {name: 'app10', address: '10.0.0.10', roles: ['app']},
  {name: 'app2', address: '10.0.0.2', roles: ['app'], tags: {rack: 'b'}},
  {name: 'db1', address: '10.0.1.1', port: 2200, user: 'postgres', roles: ['db', 'backup']},
  {name: 'bastion.example.com', roles: []},
])

function userError(pattern: RegExp, fix?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`)
    assert.equal(err.exitCode, 2)
    assert.match(err.message, pattern)
    if (fix) assert.match(err.fix ?? '', fix)
    return true
  }
}

describe('static inventory', () => {
  it('turns the config list into hosts, sorted naturally, address defaulting to the name', async () => {
    const hosts = await loadInventory(env)
    assert.deepEqual(
      hosts.map((h) => h.name),
      ['app2', 'app10', 'bastion.example.com', 'db1'],
    )
    assert.deepEqual(hosts[0], {name: 'app2', address: '10.0.0.2', roles: ['app'], tags: {rack: 'b'}})
    assert.deepEqual(hosts[2], {name: 'bastion.example.com', address: 'bastion.example.com', roles: [], tags: {}})
    assert.deepEqual(hosts[3], {name: 'db1', address: '10.0.1.1', port: 2200, user: 'postgres', roles: ['db', 'backup'], tags: {}})
  })

  it('rejects two hosts with the same name', async () => {
    await assert.rejects(
      loadInventory(staticEnv([{name: 'web1', address: '10.0.0.1'}, {name: 'web1', address: '10.0.0.2'}])),
      userError(/static inventory has more than one host with the same name: web1 \(10\.0\.0\.1, 10\.0\.0\.2\)/),
    )
  })

  it('compares names naturally and deterministically', () => {
    const names = ['app10', 'app1', 'App3', 'app2', 'db1', 'app1-b', 'app02', 'i-0abc']
    assert.deepEqual([...names].sort(compareHostNames), ['app1', 'app1-b', 'app02', 'app2', 'App3', 'app10', 'db1', 'i-0abc'])
    assert.ok(compareHostNames('app02', 'app2') !== 0, 'distinct names never compare equal')
  })
})

describe('selectHosts', () => {
  let all: Host[]
  it('keeps the hosts of a role', async () => {
    all = await loadInventory(env)
    assert.deepEqual(
      selectHosts(all, {role: 'app'}).map((h) => h.name),
      ['app2', 'app10'],
    )
    assert.deepEqual(selectHosts(all, {}), all)
  })

  it('rejects an unknown role, listing the known ones', () => {
    assert.throws(() => selectHosts(all, {role: 'cache'}), userError(/No host has role "cache"/, /Use one of: app, backup, db\./))
  })

  it('keeps named hosts (by name or address) in the order given, and rejects unknown ones', () => {
    assert.deepEqual(
      selectHosts(all, {hosts: ['db1', '10.0.0.2']}).map((h) => h.name),
      ['db1', 'app2'],
    )
    assert.throws(() => selectHosts(all, {hosts: ['app2', 'app3', 'app4']}), userError(/Unknown hosts: app3, app4\./, /feedops hosts/))
    assert.throws(() => selectHosts(all, {role: 'app', hosts: ['db1']}), userError(/Unknown host: db1\./, /with role app/))
  })
})
