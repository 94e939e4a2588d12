import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {ExitCode, formatError, UserError} from '../src/errors.js'
import {MapVersionConflict} from '../src/shards/catalog.js'

describe('formatError', () => {
  it('a UserError is its sentence and its fix; the stack only with debug', () => {
    const err = new UserError('The thing is wrong.', {fix: 'Fix the thing.'})
    const r = formatError(err)
    assert.equal(r.exitCode, ExitCode.badInput)
    assert.equal(r.text, 'Error: The thing is wrong.\nFix: Fix the thing.\n')
    assert.deepEqual(r.json, {message: 'The thing is wrong.', fix: 'Fix the thing.', exitCode: 2})
    assert.match(formatError(err, {debug: true}).text, /^Error: The thing is wrong\.\nFix: Fix the thing\.\nUserError: The thing is wrong\.\n +at /)
  })

  it('escapes control characters of quoted text in the sentence and the fix (not in --json)', () => {
    const r = formatError(new UserError('Host "a\nb\u001b[31m" is unknown.', {fix: 'Drop "\r".'}))
    assert.equal(r.text, 'Error: Host "a\\nb\\x1b[31m" is unknown.\nFix: Drop "\\r".\n')
    assert.equal(r.json.message, 'Host "a\nb\u001b[31m" is unknown.')
  })

  it('a MapVersionConflict reaching the user is a sentence with a fix and exit code 3, not a bug', () => {
    const r = formatError(new MapVersionConflict(7, 8))
    assert.equal(r.exitCode, ExitCode.nothingDone)
    assert.match(r.text, /^Error: The shard map changed while this command ran \(version 7 became 8\), so nothing was applied\.\nFix: .*feedops shards map.*\n$/)
    assert.doesNotMatch(r.text, /Bug|at /)
  })

  it('anything else is a bug, shown with its stack', () => {
    const r = formatError(new RangeError('out of range'))
    assert.equal(r.exitCode, ExitCode.failed)
    assert.match(r.text, /^Bug: RangeError: out of range\n +at .*\nPlease report this/s)
    assert.equal(r.json.message, 'out of range')
    assert.match(formatError('thrown text').text, /^Bug: Error: thrown text/)
  })
})
