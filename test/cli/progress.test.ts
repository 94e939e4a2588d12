import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {itemProgress, progressMode, withProgress} from '../../src/cli/progress.js'

/** What `work` writes to stderr (stdout is the test runner's own channel here). */
async function capture(work: () => Promise<void>): Promise<string> {
  let out = ''
  const write = process.stderr.write
  process.stderr.write = ((c: string | Uint8Array) => ((out += String(c)), true)) as typeof process.stderr.write
  try {
    await work()
  } finally {
    process.stderr.write = write
  }
  return out
}

describe('itemProgress', () => {
  it('is off with --json, listr2 on a terminal, plain lines otherwise', () => {
    assert.equal(progressMode(true, {isTTY: true}), 'off')
    assert.equal(progressMode(false, {isTTY: true}), 'tty')
    assert.equal(progressMode(false, {isTTY: false}), 'plain')
    assert.equal(progressMode(false, {}), 'plain')
  })

  it('writes plain lines on stderr (first step, at most one a second, the end) and collects the failed items, unfinished ones as interrupted', async () => {
    let failed: unknown
    const out = await capture(async () => {
      const p = await itemProgress(['db1', 'db2', 'db3'], {mode: 'plain'})
      p.update('db1', '1/4 shards')
      p.update('db1', '1/4 shards')
      p.update('db1', '2/4 shards') // within a second of the last line: not logged
      p.update('db2', 'copying')
      p.done('db1', true, 'done in 1.00 s')
      p.done('db2', false, 'connection refused')
      p.update('db1', 'ignored after done')
      p.update('nope', 'not an item')
      failed = await p.finish()
    })
    assert.equal(
      out,
      // db3 never started: no line for it in the log, but it is reported
      ['db1: 1/4 shards', 'db2: copying', 'db1: done in 1.00 s', 'db2: failed: connection refused', ''].join('\n'),
    )
    assert.deepEqual(failed, [
      {item: 'db2', error: 'connection refused'},
      {item: 'db3', error: 'interrupted'},
    ])
  })

  it('draws nothing when off, and still reports the failures', async () => {
    let failed: unknown
    const out = await capture(async () => {
      const p = await itemProgress(['app1', 'app2'], {mode: 'off'})
      p.done('app1', false, 'timed out')
      p.done('app2', true)
      failed = await p.finish()
    })
    assert.equal(out, '')
    assert.deepEqual(failed, [{item: 'app1', error: 'timed out'}])
  })

  it('runs listr2 on stderr only, and finishes when every item is done', async () => {
    const out = await capture(async () => {
      const p = await itemProgress(['s1', 's2'], {mode: 'tty'})
      p.update('s1', 'working')
      p.done('s1', true, 'ok')
      p.done('s2', false, 'broken')
      assert.deepEqual(await p.finish(), [{item: 's2', error: 'broken'}])
    })
    assert.match(out, /s2: failed/)
    assert.equal(process.listenerCount('SIGINT'), 0, 'listr2 left no signal handler behind')
  })

  it('withProgress finishes the drawing when the work throws, marking what was not done as failed', async () => {
    const out = await capture(async () => {
      await assert.rejects(
        withProgress(['lab'], 'plain', async (p) => {
          p.update('lab', 'starting sshd')
          throw new Error('port taken')
        }),
        /port taken/,
      )
    })
    assert.equal(out, 'lab: starting sshd\nlab: failed\n')
  })
})
