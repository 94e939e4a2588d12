import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {shardsByServer, type ShardMap} from '../../src/shards/catalog.js'
import {shardSchemaSql} from '../../src/shards/ddl.js'
import {MAX_SHARD} from '../../src/shards/ids.js'
import {CATALOG_DDL_LOCK, LOCK_CLASS, SHARDS_INIT_LOCK, nextIdLock} from '../../src/shards/lock-keys.js'

describe('advisory-lock keys', () => {
  it('gives every lock its own key in the one class: named locks never meet a shard', () => {
    const named = [CATALOG_DDL_LOCK, SHARDS_INIT_LOCK]
    assert.equal(new Set(named).size, named.length)
    const shardKeys = new Set(Array.from({length: MAX_SHARD + 1}, (_, s) => nextIdLock(s)))
    assert.equal(shardKeys.size, MAX_SHARD + 1)
    for (const k of named) assert.ok(!shardKeys.has(k), `named lock ${k} collides with a shard's next_id() lock`)
  })

  it('is what next_id() locks', () => {
    assert.match(shardSchemaSql(42, 0n), new RegExp(`pg_advisory_lock\\(${LOCK_CLASS}, ${nextIdLock(42)}\\)`))
  })
})

describe('shardsByServer', () => {
  it('groups the map by server, each server’s shards ascending, whatever order the map lists them in', () => {
    const map: Pick<ShardMap, 'shards'> = {
      shards: [
        {shard: 3, server: 'pg2', state: 'active'},
        {shard: 0, server: 'pg1', state: 'active'},
        {shard: 2, server: 'pg1', state: 'active'},
        {shard: 1, server: 'pg2', state: 'active'},
        {shard: 4, server: 'pg3', state: 'active'},
      ],
    }
    assert.deepEqual([...shardsByServer(map)], [
      ['pg1', [0, 2]],
      ['pg2', [1, 3]],
      ['pg3', [4]],
    ])
    assert.deepEqual(shardsByServer({shards: []}).size, 0)
  })
})
