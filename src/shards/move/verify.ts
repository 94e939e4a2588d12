import pg from 'pg'

import {q} from './names.js'
import {writeMarker} from './server-objects.js'
import {ReplicationTimeout, waitForMarker} from './replication.js'

/**
 * Compares the two copies of a shard at one consistent point: per table, the row count and a hash of
 * all rows (the sum of a 64-bit hash of each row, so row order does not matter and no row is held in
 * memory; see hashTable).
 *
 * The point, without holding writes for the whole hash:
 *   1. on the primary (the copy being written), lock the shard's tables IN SHARE MODE (waits for in-flight
 *      writes, holds new ones; bounded by lockTimeoutMs) and export a snapshot;
 *   2. a second primary session imports it; a marker token is written (not one of the shard's tables);
 *   3. on the replica, open repeatable-read transactions until one sees the token: changes are applied in
 *      commit order and nothing was committed to the shard between the snapshot and the token, so that
 *      snapshot holds exactly what the primary's does;
 *   4. release the lock (writes resume), then hash both snapshots in parallel.
 * Both sessions use the same TimeZone, DateStyle and float format, so a row's text is the same on both.
 */
export interface TableCheck {
  table: string
  primaryRows: number
  replicaRows: number
  primaryHash: string
  replicaHash: string
  ok: boolean
}

export interface VerifyResult {
  ok: boolean
  tables: TableCheck[]
  /** How long the primary's writes were held for the consistent point. */
  heldMs: number
}

const SESSION = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3"

async function connect(url: string, name: string): Promise<pg.Client> {
  const c = new pg.Client({connectionString: url, application_name: name})
  c.on('error', () => undefined)
  await c.connect()
  await c.query(SESSION)
  return c
}

/**
 * Per table: row count and the sum of a 64-bit hash of each row. The row's hash is hash_record_extended,
 * which combines each column's own hash function (the ones hash partitioning relies on staying the same
 * across servers and versions) and costs a third of hashing the row's text; a table with a column type
 * that has no hash function falls back to hashing the text.
 */
async function hashTable(c: pg.Client, schema: string, table: string): Promise<{n: string; h: string}> {
  const of = (h: string) => `SELECT count(*)::text AS n, coalesce(sum(${h}), 0)::text AS h FROM ${q(schema)}.${q(table)} AS t`
  await c.query('SAVEPOINT hash')
  try {
    const r = await c.query<{n: string; h: string}>(of('hash_record_extended(t, 0)'))
    await c.query('RELEASE SAVEPOINT hash')
    return r.rows[0]!
  } catch (err) {
    if ((err as {code?: string}).code !== '42883') throw err // undefined_function: no hash for a column's type
    await c.query('ROLLBACK TO SAVEPOINT hash')
    return (await c.query<{n: string; h: string}>(of("hashtextextended(t::text, 0)"))).rows[0]!
  }
}

export async function verifyCopies(opts: {
  primaryUrl: string
  replicaUrl: string
  schema: string
  tables: readonly string[]
  lockTimeoutMs: number
  /** Longest wait for the replica to reach the point. */
  waitMs: number
}): Promise<VerifyResult> {
  const {schema, tables} = opts
  const [locker, primary, replica] = await Promise.all([
    connect(opts.primaryUrl, 'feedops move verify'),
    connect(opts.primaryUrl, 'feedops move verify'),
    connect(opts.replicaUrl, 'feedops move verify'),
  ])
  try {
    const held = performance.now()
    await locker.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
    await locker.query(`SET LOCAL lock_timeout = ${Math.round(opts.lockTimeoutMs)}`)
    await locker.query(`LOCK TABLE ${tables.map((t) => `${q(schema)}.${q(t)}`).join(', ')} IN SHARE MODE`)
    const snap = await locker.query<{id: string}>('SELECT pg_export_snapshot() AS id')
    await primary.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    await primary.query(`SET TRANSACTION SNAPSHOT '${snap.rows[0]!.id}'`)
    const token = `verify-${process.pid}-${Date.now()}`
    await primary.query('SELECT 1') // takes the imported snapshot now
    const marker = await connect(opts.primaryUrl, 'feedops move verify')
    try {
      await writeMarker(marker, schema, token)
    } finally {
      await marker.end()
    }
    const waitStart = performance.now()
    const deadline = waitStart + opts.waitMs
    for (;;) {
      await replica.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      try {
        await waitForMarker(replica, schema, token, 0)
        break
      } catch (err) {
        await replica.query('ROLLBACK')
        // The time really waited, not the last poll's bound of 0 ms.
        if (performance.now() > deadline) throw err instanceof ReplicationTimeout ? new ReplicationTimeout(schema, Math.round(performance.now() - waitStart)) : err
        await new Promise((r) => setTimeout(r, 2))
      }
    }
    await locker.query('COMMIT')
    const heldMs = performance.now() - held
    const checks: TableCheck[] = []
    for (const table of tables) {
      const [pa, pb] = await Promise.all([hashTable(primary, schema, table), hashTable(replica, schema, table)])
      checks.push({
        table,
        primaryRows: Number(pa.n),
        replicaRows: Number(pb.n),
        primaryHash: pa.h,
        replicaHash: pb.h,
        ok: pa.n === pb.n && pa.h === pb.h,
      })
    }
    await Promise.all([primary.query('COMMIT'), replica.query('COMMIT')])
    return {ok: checks.every((c) => c.ok), tables: checks, heldMs}
  } finally {
    await Promise.all([locker.end(), primary.end(), replica.end()].map((p) => p.catch(() => undefined)))
  }
}
