import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {PrefixedLines, prefixLines} from '../../src/ssh/output.js'
import {textTable} from '../../src/cli/text-table.js'
import {formatRunSummary, summarize, type HostResult} from '../../src/ssh/results.js'

const result = (over: Partial<HostResult>): HostResult => ({
  host: 'app1',
  address: '127.0.1.1',
  ok: true,
  exitCode: 0,
  signal: null,
  stdout: '',
  stderr: '',
  durationMs: 120,
  error: null,
  status: 'ok',
  ...over,
})

describe('per-host output and summaries', () => {
  it('prefixes whole lines only, across chunk and UTF-8 boundaries', () => {
    const written: string[] = []
    const lines = new PrefixedLines('app3 | ', (t) => written.push(t))
    const text = Buffer.from('héllo\nwor')
    lines.push(text.subarray(0, 2)) // splits the é
    lines.push(text.subarray(2))
    assert.deepEqual(written, ['app3 | héllo\n'])
    lines.push(Buffer.from('ld\r\nlast without newline'))
    lines.flush()
    assert.deepEqual(written, ['app3 | héllo\n', 'app3 | world\n', 'app3 | last without newline\n'])
    lines.flush()
    assert.equal(written.length, 3)
    assert.equal(prefixLines('a\n\nb', 'h | '), 'h | a\nh | \nh | b\n')
  })

  it('counts ok, failed and interrupted hosts', () => {
    const s = summarize([
      result({}),
      result({host: 'app2', ok: false, exitCode: 1, status: 'failed'}),
      result({host: 'app3', ok: false, exitCode: null, status: 'unreachable', error: 'connection refused (127.0.1.3:2222)'}),
      result({host: 'app4', ok: false, exitCode: null, status: 'interrupted', error: 'interrupted', durationMs: 0}),
    ])
    assert.deepEqual(s, {hosts: 4, ok: 1, failed: 2, interrupted: 1})
  })

  it('prints host, exit code, time, status and error in aligned columns', () => {
    const text = formatRunSummary(
      [
        result({}),
        result({host: 'app12', ok: false, exitCode: 1, status: 'failed', durationMs: 2500}),
        result({host: 'app3', ok: false, exitCode: null, signal: 'SIGKILL', status: 'timeout', error: 'timed out after 2 s'}),
        result({host: 'app4', ok: false, exitCode: null, status: 'interrupted', error: 'interrupted', durationMs: 0}),
      ],
      3000,
    )
    assert.equal(
      text,
      [
        'HOST   EXIT     TIME    STATUS       ERROR',
        'app1   0        0.12 s  ok',
        'app12  1        2.50 s  failed',
        'app3   SIGKILL  0.12 s  timeout      timed out after 2 s',
        'app4   -        -       interrupted  interrupted',
        '1 ok, 2 failed, 1 interrupted (4 hosts) in 3.00 s',
        '',
      ].join('\n'),
    )
    assert.equal(textTable(['A', 'B'], [['x', '']]), 'A  B\nx\n')
  })
})
