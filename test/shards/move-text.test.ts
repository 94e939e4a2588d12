import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {parseErrorSentence} from '../../src/cli/base-command.js'
import {blockersText} from '../../src/shards/move/copy.js'
import {clause, sentence} from '../../src/shards/move/sentence.js'

describe('shard move messages', () => {
  it('ends a sentence with one period, never two and never none', () => {
    assert.equal(sentence('Preflight failed: pg3 has 0 free workers.'), 'Preflight failed: pg3 has 0 free workers.')
    assert.equal(sentence('the copies differ in users.. '), 'the copies differ in users.')
    assert.equal(sentence('nothing was switched'), 'nothing was switched.')
    assert.equal(sentence('why?'), 'why?')
    assert.equal(`${clause('The freeze ran past its lease.')}. Run it again.`, 'The freeze ran past its lease. Run it again.')
  })

  it("turns oclif's parse errors into one sentence naming the flag", () => {
    assert.equal(parseErrorSentence('The following error occurred:\n  Missing required flag to\nSee more help with --help'), 'Missing required flag --to.')
    assert.equal(parseErrorSentence('Nonexistent flag: --nope\nSee more help with --help'), 'Nonexistent flag: --nope.')
  })

  it('names the sessions a copy waits for', () => {
    assert.equal(
      blockersText([{pid: 42, application: 'psql', state: 'idle in transaction', ageS: 12}, {pid: 7, application: '', state: 'active', ageS: 1}]),
      'pid 42 (application "psql", idle in transaction for 12 s), pid 7 (application unnamed, active for 1 s)',
    )
    assert.equal(blockersText([]), 'none found any more')
  })
})
