import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {partSelect, planParts} from '../../src/shards/move/copy.js'

describe('shard move copy plan', () => {
  const cols = ['id']

  it('splits tables into page ranges that cover every page, the last one open, smallest table first', () => {
    const parts = planParts(
      [
        {table: 'photos', columns: cols, pages: 14_000},
        {table: 'users', columns: cols, pages: 300},
        {table: 'likes', columns: cols, pages: 2_000},
        {table: 'empty', columns: cols, pages: 0},
      ],
      2,
    )
    assert.deepEqual([...new Set(parts.map((p) => p.table))], ['empty', 'users', 'likes', 'photos'])
    for (const table of ['empty', 'users', 'likes', 'photos']) {
      const own = parts.filter((p) => p.table === table)
      assert.equal(own[0]!.from, 0, `${table} starts at page 0`)
      assert.equal(own.at(-1)!.to, null, `${table}'s last range is open (rows on pages added after the snapshot's size was read)`)
      for (let i = 1; i < own.length; i++) assert.equal(own[i]!.from, own[i - 1]!.to, `${table}'s ranges are contiguous`)
    }
    // About four parts per stream: 16,300 pages over 2 streams → ranges of 2,038 pages.
    assert.equal(parts.filter((p) => p.table === 'photos').length, 7)
    assert.equal(parts.filter((p) => p.table === 'users').length, 1)
  })

  it('caps a range at 8192 pages however few streams', () => {
    const parts = planParts([{table: 'big', columns: cols, pages: 100_000}], 1)
    assert.equal(parts.length, 13)
    assert.ok(parts.every((p) => p.to === null || p.to - p.from === 8192))
  })

  it('selects a range by ctid, with quoted names', () => {
    assert.equal(
      partSelect('s0001', {table: 'photos', columns: ['id', 'user_id'], from: 10, to: 20}),
      `SELECT "id", "user_id" FROM "s0001"."photos" WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid`,
    )
    assert.equal(partSelect('s0001', {table: 'a"b', columns: ['x'], from: 20, to: null}), `SELECT "x" FROM "s0001"."a""b" WHERE ctid >= '(20,0)'::tid`)
  })
})
