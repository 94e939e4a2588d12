import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync} from 'node:fs'
import {hostname, tmpdir} from 'node:os'
import path from 'node:path'
import {after, describe, it} from 'node:test'

import {fileStateStore} from '../../src/lb/state/file.js'

const dir = mkdtempSync(path.join(tmpdir(), 'feedops-lb-state-'))
after(() => rmSync(dir, {recursive: true, force: true}))
let n = 0
const fresh = (staleS = 600) => fileStateStore(path.join(dir, `s${++n}`, 'lb.json'), staleS)

describe('lb state file', () => {
  it('reads empty, writes whole, reads back', async () => {
    const s = fresh()
    assert.deepEqual(await s.read(), {counts: {}, drains: {}})
    const state = {counts: {nginx1: {passes: 2, fails: 0, at: '2026-01-01T00:00:00Z'}}, drains: {nginx2: {by: 'a@b', at: 'x', why: 'y'}}}
    await s.write(state)
    assert.deepEqual(await s.read(), state)
  })

  it('one lock holder at a time; the second is told who holds it; release frees it', async () => {
    const s = fresh()
    const first = await s.acquire('rotate')
    assert.equal(first.ok, true)
    const second = await s.acquire('rotate')
    assert.equal(second.ok, false)
    assert.equal(!second.ok && second.holder?.pid, process.pid)
    assert.equal(!second.ok && second.holder?.what, 'rotate')
    if (first.ok) await first.lock.release()
    const third = await s.acquire('watch')
    assert.equal(third.ok, true)
    if (third.ok) await third.lock.release()
  })

  it('a waiting acquire gets the lock once it is released', async () => {
    const s = fresh()
    const first = await s.acquire('rotate')
    assert.ok(first.ok)
    setTimeout(() => void first.lock.release(), 150)
    const t = Date.now()
    const second = await s.acquire('drain nginx1', 5000)
    assert.equal(second.ok, true)
    assert.ok(Date.now() - t >= 100)
    if (second.ok) await second.lock.release()
  })

  it('a lock whose process died on this machine is taken over; an old one too', async () => {
    const s = fresh()
    const file = path.join(dir, `s${n}`, 'lb.json.lock')
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!
    writeFileSync(file, JSON.stringify({by: 'x@y', host: hostname(), pid: dead, since: 'then', what: 'rotate', token: 'old'}))
    const r = await s.acquire('rotate')
    assert.equal(r.ok, true)
    assert.equal(r.ok && r.tookOver?.token, 'old')
    if (r.ok) await r.lock.release()

    const s2 = fresh(30)
    const file2 = path.join(dir, `s${n}`, 'lb.json.lock')
    writeFileSync(file2, JSON.stringify({by: 'x@elsewhere', host: 'elsewhere', pid: 1, since: 'then', what: 'rotate', token: 'far'}))
    assert.equal((await s2.acquire('rotate')).ok, false, 'another machine’s fresh lock is respected')
    const old = Date.now() / 1000 - 60
    utimesSync(file2, old, old)
    const r2 = await s2.acquire('rotate')
    assert.equal(r2.ok && r2.tookOver?.token, 'far')
  })

  it('release drops only its own lock', async () => {
    const s = fresh(10)
    const mine = await s.acquire('rotate')
    assert.ok(mine.ok)
    const file = path.join(dir, `s${n}`, 'lb.json.lock')
    // Someone took it over meanwhile (ours went stale): our release must leave theirs.
    writeFileSync(file, JSON.stringify({by: 'x@y', host: 'other', pid: 1, since: 'now', what: 'rotate', token: 'theirs'}))
    await mine.lock.release()
    assert.match(readFileSync(file, 'utf8'), /theirs/)
  })

  it('a state file that is not lb state fails loudly instead of resetting the counts', async () => {
    const s = fresh()
    writeFileSync(path.join(dir, `s${n}`, 'lb.json'), '{"counts": ')
    await assert.rejects(s.read(), /not valid JSON/)
  })
})
