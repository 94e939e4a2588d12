import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {parseStreamName, quoteLiteral, streamName, SYNC_SLOT} from '../../src/shards/move/names.js'
import {fenceTriggersSql, setFenceSql} from '../../src/shards/move/server-objects.js'

describe('shard move names and server SQL', () => {
  it('names streams by job and direction, and reads them back', () => {
    assert.equal(streamName(12, 'fwd'), 'feedops_move_12_fwd')
    assert.deepEqual(parseStreamName('feedops_move_12_rev'), {jobId: 12, dir: 'rev'})
    for (const other of ['feedops_move_x_fwd', 'feedops_move_12_up', 'my_slot', 'feedops_move_12_fwd_old']) assert.equal(parseStreamName(other), null)
  })

  it("recognises Postgres' table-copy slots", () => {
    assert.ok(SYNC_SLOT.test('pg_16401_sync_16386_7310987654321098765'))
    assert.ok(!SYNC_SLOT.test('pg_16401_sync_x'))
  })

  it('quotes what it puts in SQL', () => {
    assert.equal(quoteLiteral("it's"), "'it''s'")
    assert.match(fenceTriggersSql('s0001', ['we"ird']), /ON "s0001"\."we""ird"/)
    assert.match(setFenceSql("s'1", 3, null), /VALUES \('s''1', 3, NULL\)/)
    assert.match(setFenceSql('s0001', 3, 1500.4), /clock_timestamp\(\) \+ 1500 \* interval '1 millisecond'/)
  })
})
