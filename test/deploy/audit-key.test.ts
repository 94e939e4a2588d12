import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {localAuditFile, localAuditKey} from '../../src/deploy/audit.js'

describe('the local audit log is kept per fleet', () => {
  it('two labs, both environment lab, get two logs; the same fleet always the same one', () => {
    const lab = (endpoint: string) => localAuditKey('lab', {inventory: {source: 'ec2', filters: {Env: 'lab'}, roleTag: 'Role', nameTag: 'Name', address: 'private'}, aws: {endpoint}})
    const a = lab('http://127.0.0.1:4566')
    const b = lab('http://127.31.0.1:4566')
    assert.equal(a.inventory, 'ec2 Env=lab at http://127.0.0.1:4566')
    const env = {XDG_STATE_HOME: '/state'}
    assert.notEqual(localAuditFile(a, env), localAuditFile(b, env))
    assert.equal(localAuditFile(a, env), localAuditFile(lab('http://127.0.0.1:4566'), env))
    assert.match(localAuditFile(a, env), /^\/state\/feedops\/audit\/lab-[0-9a-f]{12}\.log$/)
    const fleet = localAuditKey('prod', {inventory: {source: 'static', hosts: [{name: 'web1', address: '10.0.0.1', roles: [], tags: {}}]}, aws: {}})
    assert.equal(fleet.inventory, 'static: web1@10.0.0.1')
  })
})
