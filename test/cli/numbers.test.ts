import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {parseIdText, parseShardNumber} from '../../src/cli/numbers.js'
import {UserError} from '../../src/errors.js'
import {cli} from '../support/cli.js'

const bad = (fn: () => unknown, pattern: RegExp) => assert.throws(fn, (e: unknown) => e instanceof UserError && e.exitCode === 2 && pattern.test(e.message))

describe('shard numbers and ids on the command line: the app\'s rule', {timeout: 120_000}, () => {
  it('decimal, no sign, no leading zero, no spaces; shards 0..8191', () => {
    assert.equal(parseShardNumber('0'), 0)
    assert.equal(parseShardNumber('8191'), 8191)
    for (const t of ['01', '+1', '-1', ' 1', '1 ', '1.0', '0x1', '1e3', '', '１']) bad(() => parseShardNumber(t), /is not a shard number/)
    bad(() => parseShardNumber('8192'), /out of range \(0\.\.8191\)/)
    assert.equal(parseIdText('4207903476602117120'), 4207903476602117120n)
    assert.equal(parseIdText('-1'), (1n << 64n) - 1n) // as Postgres shows an id of after 2^40 ms
    for (const t of ['012', '+12', ' 12', '12 ', '-0', '-012', '1_000']) bad(() => parseIdText(t), /is not an id/)
  })

  it('every command that takes a shard number refuses `01` before touching anything (exit 2)', async () => {
    const cases = [
      ['shards', 'move', '01', '--to', 'pg2'],
      ['shards', 'complete', '+1'],
      ['shards', 'revert', '01'],
      ['shards', 'verify', '3', '012'],
      ['ids', 'new', '--shard', '07'],
      ['ids', 'decode', '0123'],
    ]
    const ran = await Promise.all(cases.map((args) => cli([...args, '--config', '/nonexistent/feedops.yml'])))
    for (const [i, args] of cases.entries()) {
      const r = ran[i]!
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /^Error: (Shard|--shard|Id) "[^"]+" is not (a shard number|an id)\.\nFix: Give /, args.join(' '))
    }
  })
})
