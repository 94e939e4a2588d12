import assert from 'node:assert/strict'
import {rmSync} from 'node:fs'
import net from 'node:net'
import {describe, it} from 'node:test'

import {UserError} from '../../src/errors.js'
import {claimNet, listeningNets, onFreeNet} from '../support/lab.js'

const release = (dir: string, slot: string) => {
  rmSync(dir, {recursive: true, force: true})
  rmSync(slot, {recursive: true, force: true})
}

describe('test labs claim a net that is really free', () => {
  it('reads listening 127.N.x.y sockets from the kernel table', () => {
    const table = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1', // 127.0.0.1:3306 listen
      '   1: 01011E7F:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1', // 127.30.1.1:2222 listen
      '   2: 0101287F:08AE 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1', // 127.40.1.1 established
      '   3: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1', // 0.0.0.0:22 listen
    ].join('\n')
    assert.deepEqual([...listeningNets(table)].sort((a, b) => a - b), [0, 30])
  })

  it('skips a net something listens on (a lab started by hand, say)', async () => {
    const first = await claimNet('/nonexistent')
    release('/nonexistent', first.slot)
    const squatter = net.createServer()
    await new Promise<void>((resolve) => squatter.listen(45_999, `127.${first.net}.9.9`, resolve))
    try {
      assert.ok(listeningNets().has(first.net))
      const second = await claimNet('/nonexistent')
      release('/nonexistent', second.slot)
      assert.notEqual(second.net, first.net, 'the net with a listener was passed over')
    } finally {
      squatter.close()
    }
  })

  it('moves on to the next net when the lab reports a taken port, and gives up on any other error', async () => {
    const tried: number[] = []
    const used = await onFreeNet(async (n, dir, slot) => {
      tried.push(n)
      if (tried.length < 3) {
        release(dir, slot)
        throw new UserError(`127.${n}.1.1:2222 (sshd app1) is already in use by a process this lab did not start.`)
      }
      release(dir, slot)
    })
    assert.equal(tried.length, 3)
    assert.equal(new Set(tried).size, 3, `three different nets: ${tried.join(', ')}`)
    assert.equal(used, tried[2])

    let calls = 0
    await assert.rejects(
      onFreeNet(async (_n, dir, slot) => {
        calls++
        release(dir, slot)
        throw new Error('Postgres failed to start')
      }),
      /Postgres failed to start/,
    )
    assert.equal(calls, 1)
  })
})
