import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {UserError} from '../../src/errors.js'
import {
  DEFAULT_EPOCH,
  IdGenerator,
  MAX_ID,
  MAX_MS,
  MAX_SEQ,
  MAX_SHARD,
  decodeId,
  encodeId,
  epochMs,
  newId,
  parseId,
} from '../../src/shards/ids.js'
import {runCli} from './helpers.js'

const epoch = epochMs(DEFAULT_EPOCH)

describe('ids: the 41/13/10 layout', () => {
  it('round-trips time, shard and sequence', () => {
    for (const parts of [
      {msSinceEpoch: 0n, shard: 0, seq: 0},
      {msSinceEpoch: 123_456_789_012n, shard: 4321, seq: 777},
      {msSinceEpoch: MAX_MS, shard: MAX_SHARD, seq: MAX_SEQ},
    ]) {
      const id = encodeId(parts)
      const d = decodeId(id, epoch)
      assert.deepEqual({msSinceEpoch: d.msSinceEpoch, shard: d.shard, seq: d.seq}, parts)
      assert.equal(d.id, id)
      assert.equal(d.time.getTime(), Number(epoch + parts.msSinceEpoch))
    }
    // The bit positions are exactly 41 | 13 | 10.
    assert.equal(encodeId({msSinceEpoch: 1n, shard: 0, seq: 0}), 1n << 23n)
    assert.equal(encodeId({msSinceEpoch: 0n, shard: 1, seq: 0}), 1n << 10n)
    assert.equal(encodeId({msSinceEpoch: 0n, shard: 0, seq: 1}), 1n)
  })

  it('orders by time across shards: a later ms always sorts after, whatever the shard and sequence', () => {
    const early = encodeId({msSinceEpoch: 1000n, shard: MAX_SHARD, seq: MAX_SEQ})
    const late = encodeId({msSinceEpoch: 1001n, shard: 0, seq: 0})
    assert.ok(early < late)
    const ids = [5, 3, 9, 1].map((ms, i) => encodeId({msSinceEpoch: BigInt(ms), shard: 8000 - i * 1000, seq: i * 100}))
    assert.deepEqual([...ids].sort((a, b) => (a < b ? -1 : 1)).map((id) => decodeId(id, epoch).msSinceEpoch), [1n, 3n, 5n, 9n])
  })

  it('accepts the limits and rejects one past them', () => {
    assert.equal(encodeId({msSinceEpoch: MAX_MS, shard: MAX_SHARD, seq: MAX_SEQ}), MAX_ID)
    assert.throws(() => encodeId({msSinceEpoch: MAX_MS + 1n, shard: 0, seq: 0}), RangeError)
    assert.throws(() => encodeId({msSinceEpoch: -1n, shard: 0, seq: 0}), RangeError)
    assert.throws(() => encodeId({msSinceEpoch: 0n, shard: MAX_SHARD + 1, seq: 0}), RangeError)
    assert.throws(() => encodeId({msSinceEpoch: 0n, shard: -1, seq: 0}), RangeError)
    assert.throws(() => encodeId({msSinceEpoch: 0n, shard: 0, seq: MAX_SEQ + 1}), RangeError)
    assert.throws(() => encodeId({msSinceEpoch: 0n, shard: 1.5, seq: 0}), RangeError)
    // The epoch's end: 2^41 ms ≈ 69.7 years after it.
    const end = decodeId(MAX_ID, epoch).time
    assert.equal(end.toISOString(), '2080-09-06T15:47:35.551Z')
    const gen = new IdGenerator(epoch)
    assert.equal(decodeId(gen.next(1, end.getTime()), epoch).msSinceEpoch, MAX_MS)
    assert.throws(() => gen.next(1, end.getTime() + 1), /run out/)
    assert.throws(() => gen.next(1, Number(epoch) - 1), /before the epoch/)
  })

  it('decodes the signed form Postgres shows for ids after 2^40 ms', () => {
    const id = encodeId({msSinceEpoch: (1n << 40n) + 5n, shard: 17, seq: 3})
    const signed = BigInt.asIntN(64, id)
    assert.ok(signed < 0n)
    assert.deepEqual(decodeId(signed, epoch), decodeId(id, epoch))
  })

  it('parseId accepts the signed form Postgres shows, rejects over-64-bit and non-numeric input with a UserError', () => {
    assert.equal(parseId(' 18446744073709551615 '), MAX_ID)
    assert.equal(parseId('0'), 0n)
    assert.equal(parseId('-1'), MAX_ID)
    assert.equal(parseId('-9223372036854775808'), 1n << 63n)
    for (const [text, msg] of [
      ['-9223372036854775809', /below -9223372036854775808/],
      ['--1', /not a number/],
      ['18446744073709551616', /larger than 64 bits/],
      ['12abc', /not a number/],
      ['', /not a number/],
      ['1e5', /not a number/],
      ['0x10', /not a number/],
      ['3.5', /not a number/],
    ] as const) {
      assert.throws(
        () => parseId(text),
        (err: unknown) => err instanceof UserError && msg.test(err.message) && err.exitCode === 2,
        text,
      )
    }
  })

  it('IdGenerator: strictly increasing per shard, borrows the next ms after 1024 ids in one ms, survives a clock step back', () => {
    const gen = new IdGenerator(epoch)
    const now = Date.parse('2024-05-01T00:00:00Z')
    const ids = Array.from({length: 3000}, () => gen.next(42, now))
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `id ${i} not increasing`)
    const decoded = ids.map((id) => decodeId(id, epoch))
    assert.equal(decoded[0]!.seq, 0)
    assert.equal(decoded[1023]!.seq, 1023)
    assert.equal(decoded[1024]!.time.getTime(), now + 1)
    assert.ok(decoded.every((d) => d.shard === 42))
    const back = gen.next(42, now - 5000)
    assert.ok(back > ids.at(-1)!, 'a clock step back must not repeat or go back')
    // Another shard has its own sequence.
    assert.equal(decodeId(gen.next(7, now), epoch).seq, 0)
    // newId keeps one generator per epoch.
    const a = newId(3, epoch)
    const b = newId(3, epoch)
    assert.ok(b > a)
    assert.equal(decodeId(b, epoch).shard, 3)
  })
})

describe('ids: the commands', () => {
  it('ids decode prints time, shard, sequence and the epoch used', async () => {
    const id = encodeId({msSinceEpoch: epochMs('2024-01-02T03:04:05.678Z') - epoch, shard: 1234, seq: 56})
    const text = await runCli(['ids', 'decode', id.toString()], {env: {FEEDOPS_LAB_DIR: '/nonexistent-lab'}})
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /time\s+2024-01-02T03:04:05\.678Z/)
    assert.match(text.stdout, /shard\s+1234/)
    assert.match(text.stdout, /seq\s+56/)
    assert.match(text.stdout, /epoch\s+2011-01-01T00:00:00\.000Z\s+\(default\)/)

    const json = await runCli(['ids', 'decode', id.toString(), '--json', '--epoch', '2020-01-01T00:00:00Z'])
    assert.equal(json.code, 0, json.stderr)
    const r = JSON.parse(json.stdout)
    assert.equal(r.shard, 1234)
    assert.equal(r.seq, 56)
    assert.equal(r.epochSource, 'flag')
    assert.equal(r.epoch, '2020-01-01T00:00:00.000Z')
    assert.equal(r.time, new Date(Date.parse('2024-01-02T03:04:05.678Z') - Number(epoch) + Date.parse('2020-01-01T00:00:00Z')).toISOString())
  })

  it('ids decode rejects bad ids with exit code 2', async () => {
    for (const bad of ['-9223372036854775809', '99999999999999999999999', 'photo42']) {
      const r = await runCli(['ids', 'decode', '--', bad])
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`)
      assert.match(r.stderr, /^Error: Id .*\nFix: /)
    }
  })

  it('ids new --shard --count makes increasing ids of that shard', async () => {
    const r = await runCli(['ids', 'new', '--shard', '8191', '--count', '2000', '--json'])
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as {ids: string[]; shard: number}
    assert.equal(out.ids.length, 2000)
    const ids = out.ids.map(BigInt)
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!)
    for (const id of ids) assert.equal(decodeId(id, epoch).shard, 8191)
    assert.ok(Math.abs(decodeId(ids[0]!, epoch).time.getTime() - Date.now()) < 60_000)
    const bad = await runCli(['ids', 'new', '--shard', '8192'])
    assert.equal(bad.code, 2)
  })

  it('a flag value oclif itself cannot parse is bad input (exit 2, one error, no stack)', async () => {
    for (const args of [['ids', 'new', '--shard', 'abc'], ['ids', 'new', '--shard', '1', '--count', '1.5'], ['ids', 'new', '--nope']]) {
      const r = await runCli(args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /^Error: .+\nFix: (See `feedops ids new --help`|Give the shard as a decimal number from 0 to 8191, without sign, spaces or leading zeros)\.\n$/)
      assert.doesNotMatch(r.stderr, /Bug:|\n\s+at /)
      assert.equal(r.stdout, '')
    }
  })
})
