import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {MAX_PENDING_CHARS, PrefixedLines, prefixLines} from '../../src/ssh/output.js'

function collect(prefix = 'app1 | ') {
  const writes: string[] = []
  return {writes, lines: new PrefixedLines(prefix, (t) => writes.push(t))}
}

describe('PrefixedLines', () => {
  it('writes whole prefixed lines, holding a partial line until its newline or flush', () => {
    const {writes, lines} = collect()
    lines.push('one\ntw')
    lines.push('o\r\nthr')
    lines.push(Buffer.from('ee'))
    lines.flush()
    assert.deepEqual(writes, ['app1 | one\n', 'app1 | two\n', 'app1 | three\n'])
  })

  it('joins a UTF-8 character split across chunks', () => {
    const {writes, lines} = collect()
    const bytes = Buffer.from('✓ ok\n')
    lines.push(bytes.subarray(0, 1))
    lines.push(bytes.subarray(1))
    assert.deepEqual(writes, ['app1 | ✓ ok\n'])
  })

  it('shows control characters escaped, so output cannot forge another host line or drive the terminal', () => {
    const {writes, lines} = collect()
    lines.push('ok\rapp2 | forged\n\x1b[2Jcleared\tcol\n')
    assert.deepEqual(writes, ['app1 | ok\\rapp2 | forged\napp1 | \\x1b[2Jcleared\tcol\n'])
    assert.equal(prefixLines('a\nb', '> '), '> a\n> b\n')
  })

  it('streams one endless line without newlines in bounded memory, written in prefixed pieces', () => {
    const {writes, lines} = collect()
    const chunk = 'x'.repeat(32 << 10)
    const total = 40 << 20
    let maxPending = 0
    for (let sent = 0; sent < total; sent += chunk.length) {
      lines.push(chunk)
      maxPending = Math.max(maxPending, lines.pendingLength)
    }
    lines.flush()
    assert.ok(maxPending < MAX_PENDING_CHARS, `held back at most ${maxPending} characters`)
    assert.equal(lines.pendingLength, 0)
    // Every byte comes out once, each piece prefixed and at most one limit plus one chunk long.
    assert.equal(writes.reduce((n, w) => n + w.length - 'app1 | '.length - 1, 0), total)
    assert.ok(writes.every((w) => w.startsWith('app1 | x') && w.endsWith('x\n') && w.length <= MAX_PENDING_CHARS + chunk.length + 8))
    assert.ok(writes.length >= total / (MAX_PENDING_CHARS + chunk.length))
  })

  it('keeps a line shorter than the limit whole, however many chunks it arrives in', () => {
    const {writes, lines} = collect()
    for (let i = 0; i < 1000; i++) lines.push('y'.repeat(100))
    lines.push('\n')
    assert.deepEqual(writes, [`app1 | ${'y'.repeat(100_000)}\n`])
  })
})
