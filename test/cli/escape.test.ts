import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {printable} from '../../src/cli/escape.js'
import {textTable} from '../../src/cli/text-table.js'

describe('printable', () => {
  it('leaves ordinary text alone, including non-ASCII', () => {
    for (const s of ['', 'app1', 'disk=12G free of 40G', 'Ünïcødé ✓ 日本', 'a\\x1b is only text']) assert.equal(printable(s), s)
  })

  it('shows C0, DEL and C1 controls as visible escapes', () => {
    assert.equal(printable('a\nb\rc\td'), 'a\\nb\\rc\\td')
    assert.equal(printable('\x1b[31mred\x1b[0m'), '\\x1b[31mred\\x1b[0m')
    assert.equal(printable('\x00\x07\x7f'), '\\x00\\x07\\x7f')
    assert.equal(printable('\u009b2J'), '\\u009b2J')
  })

  it('keeps the characters it is told to', () => {
    assert.equal(printable('a\tb\nc\x1b', '\t\n'), 'a\tb\nc\\x1b')
  })

  it('is applied to every table cell, so a cell cannot break its row or the alignment', () => {
    assert.equal(textTable(['NAME', 'NOTE'], [['web1', 'x\ny'], ['web2', '\x1b[2J']]), 'NAME  NOTE\nweb1  x\\ny\nweb2  \\x1b[2J\n')
  })
})
