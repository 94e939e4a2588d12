import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {hostSelection, splitList} from '../../src/cli/host-flags.js'
import {isUserError} from '../../src/errors.js'

describe('hostSelection', () => {
  it('turns --role and --hosts into a selection, blanks between names dropped', () => {
    assert.deepEqual(hostSelection({}), {})
    assert.deepEqual(hostSelection({role: ' app '}), {role: 'app'})
    assert.deepEqual(hostSelection({hosts: 'app3, app1,,app2'}), {hosts: ['app3', 'app1', 'app2']})
    assert.deepEqual(hostSelection({role: 'app', hosts: 'app1'}), {role: 'app', hosts: ['app1']})
    assert.deepEqual(splitList(' a ,b,'), ['a', 'b'])
  })

  it('refuses a blank selection (what `--hosts "$UNSET"` becomes) instead of selecting every host', () => {
    for (const flags of [{hosts: ''}, {hosts: ','}, {hosts: ' , '}, {role: ''}, {role: '  '}, {role: 'app', hosts: ''}]) {
      assert.throws(
        () => hostSelection(flags),
        (err: unknown) => isUserError(err) && err.exitCode === 2 && /^--(hosts|role) (is empty|names no host)/.test(err.message) && Boolean(err.fix),
        JSON.stringify(flags),
      )
    }
  })
})
