import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {XMLParser, XMLValidator} from 'fast-xml-parser'

import {UserError} from '../../src/errors.js'
import {drawPicture, picture} from '../../src/shards/picture.js'
import {pictureSvg} from '../../src/shards/picture-svg.js'
import {planFlags} from '../../src/shards/rebalance/input.js'
import {assertPlanHolds, brokenMoves} from '../../src/shards/rebalance/plan-file.js'
import {planRebalance, type PlanInput, type ShardSize} from '../../src/shards/rebalance/plan.js'
import {planPicture} from '../../src/shards/rebalance/render.js'
import {nextMove, pairKey} from '../../src/shards/rebalance/schedule.js'

const MB = 1024 * 1024
const servers = (...names: string[]) => names.map((name) => ({name, weight: 1}))

/** 16 shards round robin over pg1, pg2; shard i weighs `bytes(i)`. */
function twoServers(bytes: (i: number) => number = () => MB): ShardSize[] {
  return Array.from({length: 16}, (_, i) => ({shard: i, server: i % 2 === 0 ? 'pg1' : 'pg2', rows: bytes(i) / 100, bytes: bytes(i)}))
}

function input(shards: ShardSize[], over: Partial<Omit<PlanInput, 'flags'>> & {flags?: Partial<PlanInput['flags']>} = {}): PlanInput {
  return {
    mapVersion: 7,
    servers: over.servers ?? servers('pg1', 'pg2', 'pg3', 'pg4'),
    shards,
    pinned: over.pinned ?? [],
    flags: {strategy: 'bytes', drain: [], threshold: 10, ...over.flags},
  }
}

const after = (plan: ReturnType<typeof planRebalance>) => Object.fromEntries(plan.servers.map((s) => [s.server, s.after.shards]))
const afterBytes = (plan: ReturnType<typeof planRebalance>) => Object.fromEntries(plan.servers.map((s) => [s.server, s.after.bytes / MB]))

describe('rebalance planner', () => {
  it('by count: 2 → 4 servers, new servers start empty and end with a quarter each; no shard moves twice', () => {
    const plan = planRebalance(input(twoServers(), {flags: {strategy: 'count', threshold: 0}}))
    assert.deepEqual(after(plan), {pg1: 4, pg2: 4, pg3: 4, pg4: 4})
    assert.equal(plan.moves.length, 8)
    assert.equal(new Set(plan.moves.map((m) => m.shard)).size, 8)
    assert.ok(plan.moves.every((m) => ['pg1', 'pg2'].includes(m.from) && ['pg3', 'pg4'].includes(m.to)))
    assert.equal(plan.mapVersion, 7)
  })

  it('is deterministic: the same input gives the same plan, whatever the order of the shards', () => {
    const shards = twoServers((i) => (i + 1) * MB)
    const a = planRebalance(input(shards))
    const b = planRebalance(input([...shards].reverse()))
    assert.deepEqual(a, b)
    assert.ok(a.moves.length > 0)
  })

  it('by bytes: a skewed map is evened out by bytes, not by count (one big shard stays alone)', () => {
    // pg1 holds shard 0 of 30 MB and 7 shards of 1 MB; pg2 holds 8 shards of 1 MB.
    const shards = twoServers((i) => (i === 0 ? 30 * MB : MB))
    const plan = planRebalance(input(shards, {servers: servers('pg1', 'pg2')}))
    const bytes = afterBytes(plan)
    // The best split keeps the 30 MB shard alone-ish on pg1 and sends its small shards to pg2.
    assert.deepEqual(bytes, {pg1: 30, pg2: 15})
    assert.ok(plan.moves.every((m) => m.from === 'pg1' && m.to === 'pg2' && m.shard !== 0))
    // By count the same map is already even: nothing moves.
    assert.equal(planRebalance(input(shards, {servers: servers('pg1', 'pg2'), flags: {strategy: 'count', threshold: 0}})).moves.length, 0)
  })

  it('by bytes onto 4 servers: every server ends within the threshold of the mean, or the big shard decides', () => {
    const shards = twoServers((i) => (i % 4 === 0 ? 4 * MB : MB))
    const plan = planRebalance(input(shards))
    const bytes = Object.values(afterBytes(plan))
    const mean = bytes.reduce((a, b) => a + b, 0) / bytes.length
    for (const b of bytes) assert.ok(Math.abs(b - mean) <= mean * 0.25, `${bytes.join(',')} around ${mean}`)
  })

  it('--threshold: nothing moves while every server is within P% of the mean', () => {
    // pg1 10.5 MB, pg2 9.5 MB: 5% off the mean.
    const shards: ShardSize[] = [
      {shard: 0, server: 'pg1', rows: 0, bytes: 10.5 * MB},
      {shard: 1, server: 'pg2', rows: 0, bytes: 9.5 * MB},
      {shard: 2, server: 'pg1', rows: 0, bytes: 0.5 * MB},
      {shard: 3, server: 'pg2', rows: 0, bytes: 0.5 * MB},
    ]
    assert.equal(planRebalance(input(shards, {servers: servers('pg1', 'pg2'), flags: {threshold: 10}})).moves.length, 0)
    assert.equal(planRebalance(input(shards, {servers: servers('pg1', 'pg2'), flags: {threshold: 1}})).moves.length, 1)
  })

  it('--drain: the server ends with no shard, even when that unbalances the rest; drain moves come first', () => {
    const shards: ShardSize[] = Array.from({length: 16}, (_, i) => ({shard: i, server: `pg${(i % 4) + 1}`, rows: 0, bytes: MB}))
    const plan = planRebalance(input(shards, {flags: {strategy: 'count', drain: ['pg4'], threshold: 0}}))
    assert.equal(after(plan).pg4, 0)
    assert.deepEqual(
      plan.moves.map((m) => m.reason),
      plan.moves.map((_, i) => (i < 4 ? 'drain' : 'balance')),
    )
    assert.ok(plan.moves.filter((m) => m.reason === 'drain').every((m) => m.from === 'pg4'))
    assert.equal(plan.servers.find((s) => s.server === 'pg4')!.draining, true)
    const counts = Object.values(after(plan)).filter((n) => n > 0)
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, counts.join(','))
  })

  it('pinned shards never move, also off a drained server (the plan says so)', () => {
    const shards = twoServers()
    const pinned = [0, 2, 4, 6, 8]
    const plan = planRebalance(input(shards, {pinned, flags: {strategy: 'count', threshold: 0}}))
    assert.ok(plan.moves.length > 0)
    assert.ok(plan.moves.every((m) => !pinned.includes(m.shard)))
    const drain = planRebalance(input(shards, {pinned: [0], servers: servers('pg1', 'pg2'), flags: {strategy: 'count', drain: ['pg1'], threshold: 0}}))
    assert.equal(after(drain).pg1, 1)
    assert.match(drain.notes.join('\n'), /shard 0 is pinned/)
  })

  it('--max-moves bounds the plan and says it stopped early', () => {
    const plan = planRebalance(input(twoServers(), {flags: {strategy: 'count', threshold: 0, maxMoves: 3}}))
    assert.equal(plan.moves.length, 3)
    assert.match(plan.notes.join('\n'), /--max-moves 3/)
  })

  it('weights: a server of weight 2 gets twice the shards', () => {
    const plan = planRebalance(
      input(twoServers(), {servers: [{name: 'pg1', weight: 1}, {name: 'pg2', weight: 1}, {name: 'pg3', weight: 2}], flags: {strategy: 'count', threshold: 0}}),
    )
    assert.deepEqual(after(plan), {pg1: 4, pg2: 4, pg3: 8})
  })

  it('a shard on a server missing from the config is shown, not moved', () => {
    const shards = [...twoServers().slice(0, 15), {shard: 15, server: 'old9', rows: 0, bytes: MB}]
    const plan = planRebalance(input(shards, {flags: {strategy: 'count', threshold: 0}}))
    assert.ok(plan.moves.every((m) => m.shard !== 15))
    assert.equal(plan.servers.at(-1)!.server, 'old9')
    assert.equal(plan.servers.at(-1)!.configured, false)
  })

  it('flags: bad input is one UserError naming it', () => {
    const conf = {servers: [{name: 'pg1', url: 'postgres://x/y', weight: 1}, {name: 'pg2', url: 'postgres://x/z', weight: 1}]}
    assert.throws(() => planFlags({strategy: 'rows'}, conf), (e: unknown) => e instanceof UserError && /Unknown strategy "rows"/.test(e.message))
    assert.throws(() => planFlags({drain: ['pg9']}, conf), /pg9, which is not in env.shards.servers/)
    assert.throws(() => planFlags({drain: ['pg1', 'pg2']}, conf), /would empty every server/)
    assert.throws(() => planFlags({threshold: 120}, conf), /not a percentage/)
    assert.deepEqual(planFlags({}, conf), {strategy: 'bytes', drain: [], threshold: 10})
    assert.deepEqual(planFlags({strategy: 'count'}, conf), {strategy: 'count', drain: [], threshold: 0})
  })
})

describe('plan files made from an older map', () => {
  const plan = planRebalance(input(twoServers(), {flags: {strategy: 'count', threshold: 0}}))
  const map = (moved: Record<number, string> = {}, version = 7) => ({
    version,
    logical: 16,
    shards: twoServers().map((s) => ({shard: s.shard, server: moved[s.shard] ?? s.server, state: 'active' as const})),
  })
  const names = ['pg1', 'pg2', 'pg3', 'pg4']

  it('holds while every move still does (its shard on its source, or already on its target)', () => {
    const first = plan.moves[0]!
    assert.deepEqual(brokenMoves(plan, map({[first.shard]: first.to}, 9), names, []), [])
    assertPlanHolds(plan, map({[first.shard]: first.to}, 9), names, [])
  })

  it('is refused naming each move that no longer holds', () => {
    const [a, b] = plan.moves
    const moved = {[a!.shard]: a!.from === 'pg1' ? 'pg2' : 'pg1'}
    const broken = brokenMoves(plan, map(moved, 9), names, [b!.shard])
    assert.deepEqual(
      broken.map((x) => `${x.move.shard}: ${x.why}`),
      [`${a!.shard}: the shard is on ${moved[a!.shard]} now`, `${b!.shard}: the shard is pinned now`],
    )
    assert.throws(
      () => assertPlanHolds(plan, map(moved, 9), names, []),
      (e: unknown) => e instanceof UserError && e.message.includes(`shard ${a!.shard} ${a!.from}→${a!.to}`) && /map version 7, the map is at version 9/.test(e.message),
    )
    assert.throws(() => assertPlanHolds(plan, map(), ['pg1', 'pg2', 'pg3'], []), /pg4 is not in env.shards.servers/)
  })
})

describe('the picture of a plan', () => {
  const shards = twoServers((i) => (i === 0 ? 8 * MB : MB))
  const plan = planRebalance(input(shards, {flags: {strategy: 'count', threshold: 0, drain: ['pg2']}}))

  it('draws one bar per server per series in plain characters (snapshot)', () => {
    assert.equal(
      drawPicture(planPicture(plan), {unicode: false, width: 20}),
      [
        'logical shards (before → after)',
        '  pg1 before #################### 8',
        '      after  ###############..... 6',
        '  pg2 before #################### 8  (draining)',
        '      after  .................... 0',
        '  pg3 before .................... 0',
        '      after  #############....... 5',
        '  pg4 before .................... 0',
        '      after  #############....... 5',
        'bytes (before → after)',
        '  pg1 before #################### 15.0 MB',
        '      after  ########............ 6.0 MB',
        '  pg2 before ###########......... 8.0 MB  (draining)',
        '      after  .................... 0 B',
        '  pg3 before .................... 0 B',
        '      after  ################.... 12.0 MB',
        '  pg4 before .................... 0 B',
        '      after  #######............. 5.0 MB',
      ].join('\n'),
    )
  })

  it('draws a map: one bar per server, on a terminal in block characters', () => {
    const p = picture(['now'], [[{server: 'pg1', shards: 12, bytes: 3 * MB}, {server: 'pg2', shards: 4, bytes: MB, note: 'connection refused'}]])
    assert.equal(
      drawPicture(p, {unicode: true, width: 12}),
      ['logical shards', '  pg1 ████████████ 12', '  pg2 ████░░░░░░░░ 4  (connection refused)', 'bytes', '  pg1 ████████████ 3.0 MB', '  pg2 ████░░░░░░░░ 1.0 MB  (connection refused)'].join('\n'),
    )
  })

  it('writes an SVG that an XML parser reads, with a bar per server and series', () => {
    const svg = pictureSvg(planPicture(plan), 'plan <from map 7>')
    assert.equal(XMLValidator.validate(svg), true)
    const doc = new XMLParser({ignoreAttributes: false}).parse(svg)
    assert.equal(doc.svg['@_xmlns'], 'http://www.w3.org/2000/svg')
    const bars = (doc.svg.rect as {title?: string}[]).filter((r) => r.title)
    assert.equal(bars.length, 4 * 2 * 2) // servers × series × metrics
    assert.ok((doc.svg.text as unknown[]).some((t) => t === 'plan <from map 7>' || (t as {'#text'?: string})['#text'] === 'plan <from map 7>'))
  })
})

describe('the rebalance schedule', () => {
  const moves = [
    {shard: 0, from: 'pg1', to: 'pg3'},
    {shard: 2, from: 'pg1', to: 'pg4'},
    {shard: 1, from: 'pg2', to: 'pg3'},
    {shard: 3, from: 'pg2', to: 'pg4'},
  ]
  const perPair = {concurrency: null, perServer: 1}

  it('by default runs at most one move per source and one per target server', () => {
    assert.equal(nextMove(moves, [], new Set(), perPair), moves[0])
    // pg1 is busy as a source, pg3 as a target: shard 3 (pg2 → pg4) is the one that can start.
    assert.equal(nextMove(moves.slice(1), [moves[0]!], new Set(), perPair), moves[3])
    assert.equal(nextMove([moves[1]!, moves[2]!], [moves[0]!, moves[3]!], new Set(), perPair), undefined)
  })

  it('--concurrency bounds the moves in flight across the fleet; --per-server lifts the per-server limit', () => {
    assert.equal(nextMove(moves.slice(1), [moves[0]!], new Set(), {concurrency: 1, perServer: 1}), undefined)
    assert.equal(nextMove(moves.slice(1), [moves[0]!], new Set(), {concurrency: null, perServer: 2}), moves[1])
  })

  it('a failed pair starts no more moves; other pairs go on', () => {
    assert.equal(nextMove(moves, [], new Set([pairKey(moves[0]!)]), perPair), moves[1])
  })
})
