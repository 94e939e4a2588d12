import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {isUserError} from '../../src/errors.js'
import {maxFailCount, parseBatchSpec, parseMaxFail, planBatches, rollOut, type RollingHooks} from '../../src/deploy/strategy.js'

const hosts = Array.from({length: 12}, (_, i) => `app${i + 1}`)

describe('batch ramps', () => {
  it('canary first, then percentages of all hosts, the last size repeating', () => {
    const b = planBatches(hosts, parseBatchSpec('1,25%,50%'))
    assert.deepEqual(b.map((x) => x.length), [1, 3, 6, 2])
    assert.deepEqual(b.flat(), hosts)
    assert.deepEqual(planBatches(hosts, parseBatchSpec('100%')).map((x) => x.length), [12])
    assert.deepEqual(planBatches(hosts, parseBatchSpec('5')).map((x) => x.length), [5, 5, 2])
    assert.deepEqual(planBatches(['a'], parseBatchSpec('1%')), [['a']])
    assert.deepEqual(planBatches([], parseBatchSpec('1')), [])
  })

  it('refuses sizes that are not counts or percentages, naming the flag', () => {
    for (const bad of ['', '0', 'x', '150%', '1,,2', '-1', '2.5']) {
      assert.throws(() => parseBatchSpec(bad), (e: unknown) => isUserError(e) && /--batch/.test(e.message) && e.exitCode === 2, bad)
    }
  })

  it('max-fail as a count or a share of the hosts', () => {
    assert.equal(maxFailCount(parseMaxFail('0'), 12), 0)
    assert.equal(maxFailCount(parseMaxFail('2'), 12), 2)
    assert.equal(maxFailCount(parseMaxFail('25%'), 12), 3)
    assert.equal(maxFailCount(parseMaxFail('10%'), 5), 0)
    assert.throws(() => parseMaxFail('many'), /--max-fail/)
  })
})

/** Hosts whose switch fails, and a log of what the driver asked for. */
function fleet(failing: string[], opts: {failBack?: string[]; onSwitch?: (h: string) => void} = {}) {
  const log: string[] = []
  const hooks: RollingHooks<string> = {
    async switchHost(h, shouldStop) {
      log.push(`switch ${h}`)
      opts.onSwitch?.(h)
      await new Promise((r) => setTimeout(r, 1))
      if (shouldStop()) return {ok: false, interrupted: true}
      return failing.includes(h) ? {ok: false, error: 'gate'} : {ok: true}
    },
    async switchBack(h, why) {
      log.push(`back ${h} ${why}`)
      return opts.failBack?.includes(h) ? {ok: false, error: 'no answer'} : {ok: true}
    },
  }
  return {log, hooks}
}

describe('rollOut', () => {
  it('updates every host when every gate passes', async () => {
    const {log, hooks} = fleet([])
    const r = await rollOut(planBatches(hosts, parseBatchSpec('1,25%,50%')), {maxFail: 0}, hooks)
    assert.equal(r.stopped, null)
    assert.ok([...r.outcomes.values()].every((o) => o.outcome === 'updated'))
    assert.equal(log.filter((l) => l.startsWith('back')).length, 0)
  })

  it('switches a failed canary back at once and starts no other host past max-fail 0', async () => {
    const {log, hooks} = fleet(['app1'])
    const r = await rollOut(planBatches(hosts, parseBatchSpec('1,25%,50%')), {maxFail: 0}, hooks)
    assert.equal(r.stopped, 'max-fail')
    assert.deepEqual(log, ['switch app1', 'back app1 failed'])
    assert.equal(r.outcomes.get('app1')!.outcome, 'failed')
    assert.equal(r.outcomes.get('app2')!.outcome, 'not-started')
  })

  it('past max-fail rolls back every host already updated', async () => {
    const {log, hooks} = fleet(['app3', 'app4'])
    const r = await rollOut(planBatches(hosts, parseBatchSpec('1,25%,50%')), {maxFail: 1}, hooks)
    assert.equal(r.stopped, 'max-fail')
    assert.equal(r.failed, 2)
    assert.deepEqual(
      [...r.outcomes].filter(([, o]) => o.outcome !== 'not-started').map(([h, o]) => `${h} ${o.outcome}`),
      ['app1 rolled-back', 'app2 rolled-back', 'app3 failed', 'app4 failed'],
    )
    assert.ok(log.includes('back app1 rollback') && log.includes('back app2 rollback'))
  })

  it('keeps going within max-fail', async () => {
    const {hooks} = fleet(['app5'])
    const r = await rollOut(planBatches(hosts, parseBatchSpec('1,25%,50%')), {maxFail: 1}, hooks)
    assert.equal(r.stopped, null)
    assert.equal(r.outcomes.get('app5')!.outcome, 'failed')
    assert.equal([...r.outcomes.values()].filter((o) => o.outcome === 'updated').length, 11)
  })

  it('names a host whose switch back failed too', async () => {
    const {hooks} = fleet(['app1'], {failBack: ['app1']})
    const r = await rollOut([['app1'], ['app2']], {maxFail: 0}, hooks)
    assert.equal(r.outcomes.get('app1')!.outcome, 'revert-failed')
    assert.match(r.outcomes.get('app1')!.error!, /gate; switching back: no answer/)
  })

  it('on an abort starts no new host and switches back the hosts in flight', async () => {
    const ac = new AbortController()
    const {log, hooks} = fleet([], {onSwitch: (h) => h === 'app2' && ac.abort()})
    const r = await rollOut(planBatches(hosts, parseBatchSpec('1,25%,50%')), {maxFail: 0, signal: ac.signal}, hooks)
    assert.equal(r.stopped, 'interrupted')
    assert.equal(r.outcomes.get('app1')!.outcome, 'updated')
    for (const h of ['app2', 'app3', 'app4']) assert.equal(r.outcomes.get(h)!.outcome, 'interrupted')
    assert.equal(r.outcomes.get('app5')!.outcome, 'not-started')
    assert.ok(!log.includes('switch app5'))
  })

  /** A fleet whose hosts die at given times (ms after their gate); recheck reports them from then on. */
  function dying(dies: Record<string, number>) {
    const {log, hooks} = fleet([])
    const passedAt = new Map<string, number>()
    const t0 = performance.now()
    const inner = hooks.switchHost
    hooks.switchHost = async (h, stop) => {
      const r = await inner(h, stop)
      if (r.ok) passedAt.set(h, performance.now())
      return r
    }
    hooks.recheck = async (hs) => {
      const out = new Map<string, string>()
      for (const h of hs) if (dies[h] !== undefined && performance.now() - passedAt.get(h)! >= dies[h]!) out.set(h, 'restarted: new pid')
      return out
    }
    return {log, hooks, t0}
  }

  it('a host that dies after its gate is seen by the watch during later batches, switched back, and counts toward max-fail', async () => {
    const {log, hooks} = dying({app1: 30})
    // A slow second batch: the watch (every 10 ms) sees app1 die while app2..app4 are still switching.
    const slow = hooks.switchHost
    hooks.switchHost = async (h, stop) => {
      if (h !== 'app1') await new Promise((r) => setTimeout(r, 80))
      return slow(h, stop)
    }
    const r = await rollOut(planBatches(hosts, parseBatchSpec('1,25%,50%')), {maxFail: 0, pollMs: 10}, hooks)
    assert.equal(r.stopped, 'max-fail')
    assert.equal(r.outcomes.get('app1')!.outcome, 'failed')
    assert.match(r.outcomes.get('app1')!.error!, /restarted: new pid/)
    assert.ok(log.includes('back app1 failed'))
    // The batch in flight finished and was rolled back; no later batch started.
    for (const h of ['app2', 'app3', 'app4']) assert.equal(r.outcomes.get(h)!.outcome, 'rolled-back')
    assert.equal(r.outcomes.get('app5')!.outcome, 'not-started')
  })

  it('after each batch every host switched so far is re-checked before the next batch starts', async () => {
    const {log, hooks} = dying({app1: 0})
    const r = await rollOut(planBatches(hosts, parseBatchSpec('1,25%,50%')), {maxFail: 0, pollMs: 60_000}, hooks)
    assert.equal(r.stopped, 'max-fail')
    assert.deepEqual(log, ['switch app1', 'back app1 failed'])
  })

  it('the bake watches the whole fleet after the last batch: a host dying in it rolls everything back', async () => {
    const {hooks} = dying({app12: 60})
    const r = await rollOut(planBatches(hosts, parseBatchSpec('100%')), {maxFail: 0, pollMs: 10, bakeMs: 2000}, hooks)
    assert.equal(r.stopped, 'max-fail')
    assert.ok(r.bakedMs >= 40 && r.bakedMs < 1000, `baked ${r.bakedMs} ms`)
    assert.equal(r.outcomes.get('app12')!.outcome, 'failed')
    assert.equal(r.outcomes.get('app1')!.outcome, 'rolled-back')
  })

  it('a quiet bake lasts its time and ends with one more check of every host', async () => {
    const {hooks} = dying({})
    let checks = 0
    const inner = hooks.recheck!
    hooks.recheck = (hs) => {
      checks++
      return inner(hs)
    }
    const r = await rollOut(planBatches(hosts, parseBatchSpec('1,50%')), {maxFail: 0, pollMs: 20, bakeMs: 200}, hooks)
    assert.equal(r.stopped, null)
    assert.ok(r.bakedMs >= 200, `${r.bakedMs}`)
    assert.ok(checks >= 3 + 5, `${checks} checks`)
    assert.ok([...r.outcomes.values()].every((o) => o.outcome === 'updated'))
  })

  it('with no bake a host that dies right after the last batch is still caught by the final check', async () => {
    const {hooks} = dying({app12: 0})
    const r = await rollOut(planBatches(hosts, parseBatchSpec('100%')), {maxFail: 0, pollMs: 60_000, bakeMs: 0}, hooks)
    assert.equal(r.stopped, 'max-fail')
  })
})
