import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {cli} from '../support/cli.js'

describe('ids commands: epochs and signed ids', {timeout: 180_000}, () => {
  it('ids new with an epoch in the future or more than 69.7 years ago is bad input', async () => {
    for (const [epoch, message] of [
      ['2099-01-01T00:00:00Z', /^Error: The epoch 2099-01-01T00:00:00\.000Z is in the future/],
      ['1900-01-01T00:00:00Z', /^Error: The epoch 1900-01-01T00:00:00\.000Z is more than 2\^41 ms \(69\.7 years\) ago/],
    ] as const) {
      const r = await cli(['ids', 'new', '--shard', '3', '--epoch', epoch])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, message)
      assert.match(r.stderr, /\nFix: Pass an --epoch in the past 69 years\.\n$/)
      assert.equal(r.stdout, '')
    }
  })

  it('ids decode takes the signed form Postgres shows', async () => {
    const r = await cli(['ids', 'decode', '--json', '--', '-9223372036854775808'])
    assert.equal(r.code, 0, r.stderr)
    const d = JSON.parse(r.stdout)
    assert.equal(d.id, '9223372036854775808')
    assert.equal(d.msSinceEpoch, String(1n << 40n))
    assert.deepEqual([d.shard, d.seq], [0, 0])
  })
})
