import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import pg from 'pg'

import {shardSchemaSql} from '../../src/shards/ddl.js'
import {DEFAULT_EPOCH, decodeId, encodeId, epochMs} from '../../src/shards/ids.js'
import {startTestLab, type TestLab} from '../support/lab.js'
import {serverUrl} from './helpers.js'

const epoch = epochMs(DEFAULT_EPOCH)

describe('next_id() in Postgres', () => {
  let lab: TestLab
  let pool: pg.Pool

  before(async () => {
    lab = await startTestLab({postgres: 1})
    pool = new pg.Pool({connectionString: serverUrl(lab, 1, 'feedops'), max: 8})
    // An idle client that sees its server stop (lab teardown on a loaded machine) must not crash the file.
    pool.on('error', () => undefined)
    await pool.query(shardSchemaSql(5, epoch) + shardSchemaSql(8191, epoch) + shardSchemaSql(0, epoch))
    await pool.query(shardSchemaSql(5, epoch)) // idempotent: a second run changes nothing and does not fail
  })
  after(async () => {
    await pool?.end()
    await lab?.stop()
  })

  const ids = async (schema: string, n: number, client: pg.Pool | pg.PoolClient = pool) =>
    (await client.query<{id: string}>(`SELECT ${schema}.next_id()::text AS id FROM generate_series(1, $1)`, [n])).rows.map((r) =>
      BigInt(r.id),
    )

  it('upgrades a schema made before the username claims and token generations when run again', async () => {
    await pool.query(shardSchemaSql(7, epoch))
    await pool.query('DROP TABLE s0007.usernames; ALTER TABLE s0007.users DROP COLUMN token_gen')
    await pool.query("INSERT INTO s0007.users (id, username) VALUES (1, 'old_user')")
    await pool.query(shardSchemaSql(7, epoch))
    const r = await pool.query<{token_gen: number}>('SELECT token_gen FROM s0007.users WHERE id = 1')
    assert.equal(r.rows[0]?.token_gen, 0)
    assert.equal((await pool.query("SELECT to_regclass('s0007.usernames') IS NOT NULL AS ok")).rows[0].ok, true)
  })

  it('decodes in TypeScript to its shard and a time within a few ms of now', async () => {
    for (const [schema, shard] of [['s0005', 5], ['s8191', 8191], ['s0000', 0]] as const) {
      const before = Date.now()
      const [id] = await ids(schema, 1)
      const after = Date.now()
      const d = decodeId(id!, epoch)
      assert.equal(d.shard, shard)
      assert.ok(d.time.getTime() >= before - 5 && d.time.getTime() <= after + 5, `${d.time.toISOString()} not in [${before}, ${after}]`)
    }
  })

  it('is strictly increasing over 3000 calls in one schema (the sequence wraps mod 1024 without repeating)', async () => {
    const list = await ids('s0005', 3000)
    for (let i = 1; i < list.length; i++) assert.ok(list[i]! > list[i - 1]!, `id ${i} is not larger than id ${i - 1}`)
    const seqs = new Set(list.map((id) => decodeId(id, epoch).seq))
    assert.ok(seqs.size > 1)
  })

  it('is unique across concurrent sessions', async () => {
    const batches = await Promise.all(Array.from({length: 6}, () => ids('s0000', 1500)))
    const all = batches.flat()
    assert.equal(new Set(all).size, all.length)
    for (const b of batches) for (let i = 1; i < b.length; i++) assert.ok(b[i]! > b[i - 1]!)
  })

  it('after 1024 ids in one millisecond, waits for the next millisecond instead of repeating', async () => {
    // In one server-side call: put the register at seq 1020 of the current ms (as if 1021 ids had
    // just been made in it), take 6 ids, and read the clock after.
    await pool.query(`CREATE OR REPLACE FUNCTION public.burst_s0005(n int) RETURNS bigint[] LANGUAGE plpgsql AS $$
      DECLARE ms bigint; out bigint[];
      BEGIN
        ms := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - ${epoch};
        PERFORM setval('s0005.id_clock', (ms << 10) | 1020);
        out := ARRAY[ms];
        FOR i IN 1..n LOOP out := out || s0005.next_id(); END LOOP;
        RETURN out || (floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - ${epoch});
      END $$`)
    // The ms may tick between setval and the first call (then there is nothing to wait for): retry.
    for (let attempt = 1; ; attempt++) {
      const {rows} = await pool.query<{r: string[]}>('SELECT burst_s0005(6)::text[] AS r')
      const [ms, ...rest] = rows[0]!.r.map(BigInt)
      const clockAfter = rest.pop()!
      const d = rest.map((id) => decodeId(id, epoch))
      for (let i = 1; i < rest.length; i++) assert.ok(rest[i]! > rest[i - 1]!)
      const inFullMs = d.filter((x) => x.msSinceEpoch === ms!)
      assert.ok(inFullMs.every((x) => x.seq > 1020), 'no id may reuse a sequence number of the full millisecond')
      if (inFullMs.length < 3 && attempt < 20) continue
      assert.deepEqual(inFullMs.map((x) => x.seq), [1021, 1022, 1023])
      assert.ok(d[3]!.msSinceEpoch > ms!, 'the 1025th id of a millisecond must move to a later millisecond')
      assert.equal(d[3]!.seq, 0)
      // It waited for the clock rather than borrowing a future millisecond.
      assert.ok(d[5]!.msSinceEpoch <= clockAfter!)
      break
    }
  })

  it('keeps counting forward when the clock is behind the last id (no repeats after a clock step back)', async () => {
    const ahead = BigInt(Date.now()) - epoch + 60_000n
    await pool.query(`SELECT setval('s0005.id_clock', $1)`, [(ahead << 10n).toString()])
    const list = await ids('s0005', 5)
    assert.deepEqual(
      list.map((id) => [decodeId(id, epoch).msSinceEpoch, decodeId(id, epoch).seq]),
      [1, 2, 3, 4, 5].map((s) => [ahead, s]),
    )
    assert.equal(list[0], encodeId({msSinceEpoch: ahead, shard: 5, seq: 1}))
  })

  it('never hands out an id twice, even when the transaction that took it rolls back', async () => {
    const client = await pool.connect()
    try {
      await client.query('BEGIN')
      const [rolledBack] = await ids('s0000', 1, client)
      await client.query('ROLLBACK')
      const [next] = await ids('s0000', 1, client)
      assert.ok(next! > rolledBack!)
    } finally {
      client.release()
    }
  })

  it('is the default primary key of photos, and a failed call does not leave its lock behind', async () => {
    await pool.query("INSERT INTO s0005.users (id, username) VALUES (77, 'ann')")
    const r = await pool.query<{id: string}>("INSERT INTO s0005.photos (user_id, s3_key) VALUES (77, 'k/1.jpg') RETURNING id::text")
    assert.equal(decodeId(BigInt(r.rows[0]!.id), epoch).shard, 5)
    // A statement cancelled (statement_timeout) in the middle of next_id() calls, most likely inside
    // the locked part, must release the advisory lock, or every later caller would hang.
    const c1 = await pool.connect()
    try {
      await c1.query("SET statement_timeout = '20ms'")
      const err = await c1.query('SELECT s8191.next_id() FROM generate_series(1, 1000000)').then(
        () => null,
        (e: {code?: string}) => e,
      )
      assert.equal(err?.code, '57014', 'the statement must have been cancelled')
      await c1.query('RESET statement_timeout')
    } finally {
      c1.release()
    }
    const other = await pool.connect()
    try {
      await other.query("SET lock_timeout = '2s'")
      const [id] = await ids('s8191', 1, other)
      assert.equal(decodeId(id!, epoch).shard, 8191)
    } finally {
      other.release()
    }
  })
})
