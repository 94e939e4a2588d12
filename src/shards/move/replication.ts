import {setTimeout as sleep} from 'node:timers/promises'

import type pg from 'pg'

import {MoveInterrupted} from './context.js'
import {MOVE_SCHEMA, SYNC_SLOT, q, quoteLiteral, streamName, type Direction} from './names.js'
import {readMarker, writeMarker} from './server-objects.js'

/**
 * Logical replication of one shard schema between two servers: a publication on the side that has the
 * data (`FOR TABLES IN SCHEMA`, plus this schema's marker row), a subscription on the other. Both
 * directions stream only, from a slot made beforehand: forward (source → target) from the slot whose
 * snapshot the initial copy used (copy.ts), reverse (target → old source, after the flip) from a slot
 * made during the cutover. Every step checks what exists first, so it can
 * be run again after a crash.
 */

export async function ensurePublication(pool: pg.Pool, jobId: number, dir: Direction, schema: string): Promise<void> {
  const name = streamName(jobId, dir)
  const r = await pool.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name])
  if (r.rowCount) return
  await pool.query(
    `CREATE PUBLICATION ${q(name)} FOR TABLES IN SCHEMA ${q(schema)}, TABLE ${MOVE_SCHEMA}.marker WHERE (schema_name = ${quoteLiteral(schema)})`,
  )
}

export async function dropPublication(pool: pg.Pool, name: string): Promise<void> {
  await pool.query(`DROP PUBLICATION IF EXISTS ${q(name)}`)
}

export interface SubscriptionOptions {
  /** libpq URL of the publishing server, as the subscribing server will reach it. */
  publisherUrl: string
}

export async function subscriptionExists(pool: pg.Pool | pg.ClientBase, name: string): Promise<boolean> {
  const r = await pool.query('SELECT 1 FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())', [name])
  return (r.rowCount ?? 0) > 0
}

export async function ensureSubscription(pool: pg.Pool, jobId: number, dir: Direction, opts: SubscriptionOptions): Promise<void> {
  const name = streamName(jobId, dir)
  if (await subscriptionExists(pool, name)) return
  await pool.query(
    `CREATE SUBSCRIPTION ${q(name)} CONNECTION ${quoteLiteral(opts.publisherUrl)} PUBLICATION ${q(name)}
     WITH (slot_name = ${quoteLiteral(name)}, create_slot = false, copy_data = false)`,
  )
}

/**
 * Drops a subscription without relying on the publisher being reachable: disable, detach the slot, drop;
 * then drop its slot and any table-copy slots it left on the publisher (when the publisher is given).
 */
export async function dropSubscription(pool: pg.Pool, name: string, publisher?: pg.Pool): Promise<void> {
  const r = await pool.query<{oid: string}>('SELECT oid::text FROM pg_subscription WHERE subname = $1', [name])
  const oid = r.rows[0]?.oid
  if (oid) {
    await pool.query(`ALTER SUBSCRIPTION ${q(name)} DISABLE`)
    await pool.query(`ALTER SUBSCRIPTION ${q(name)} SET (slot_name = NONE)`)
    await pool.query(`DROP SUBSCRIPTION IF EXISTS ${q(name)}`)
  }
  if (!publisher) return
  await dropSlot(publisher, name)
  if (oid) {
    const sync = await publisher.query<{slot_name: string}>('SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE $1', [`pg_${oid}_sync_%`])
    for (const s of sync.rows) if (SYNC_SLOT.test(s.slot_name)) await dropSlot(publisher, s.slot_name)
  }
}

/** Drops a replication slot, ending the WAL sender that still uses it; no-op when it does not exist. */
export async function dropSlot(pool: pg.Pool, name: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const r = await pool.query<{active_pid: number | null}>('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [name])
    const row = r.rows[0]
    if (!row) return
    if (row.active_pid !== null) {
      await pool.query('SELECT pg_terminate_backend($1)', [row.active_pid])
    } else {
      try {
        await pool.query('SELECT pg_drop_replication_slot($1)', [name])
        return
      } catch (err) {
        // 55006: became active again in between (the subscriber reconnected); 42704: gone meanwhile.
        const code = (err as {code?: string}).code
        if (code === '42704') return
        if (code !== '55006') throw err
      }
    }
    if (Date.now() > deadline) throw new Error(`replication slot ${name} is still in use after ${timeoutMs} ms`)
    await sleep(50)
  }
}

/** Makes the slot a reverse subscription will stream from (idempotent). */
export async function ensureSlot(pool: pg.Pool | pg.ClientBase, name: string): Promise<void> {
  await pool.query(
    "SELECT pg_create_logical_replication_slot($1, 'pgoutput') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
    [name],
  )
}

export async function slotExists(pool: pg.Pool, name: string): Promise<boolean> {
  const r = await pool.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [name])
  return (r.rowCount ?? 0) > 0
}

/** Bytes of WAL the subscriber has not confirmed yet (from the publisher's slot); null without the slot. */
export async function lagBytes(publisher: pg.Pool, slot: string): Promise<number | null> {
  const r = await publisher.query<{lag: string | null}>(
    'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  )
  const v = r.rows[0]?.lag
  return v === undefined || v === null ? null : Math.max(0, Number(v))
}

/**
 * Writes a new marker token on the publisher and waits until the subscriber has applied it: the time that
 * takes is the replication lag as a writer would see it. Throws after timeoutMs.
 */
export async function markerRoundTrip(publisher: pg.Pool, subscriber: pg.Pool, schema: string, timeoutMs: number): Promise<number> {
  const token = `lag-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`
  const started = performance.now()
  await writeMarker(publisher, schema, token)
  await waitForMarker(subscriber, schema, token, timeoutMs)
  return performance.now() - started
}

/** Polls the subscriber's marker until it holds `token`. */
export async function waitForMarker(subscriber: pg.Pool | pg.ClientBase, schema: string, token: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    if ((await readMarker(subscriber, schema)) === token) return
    if (performance.now() > deadline) throw new ReplicationTimeout(schema, timeoutMs)
    await sleep(1)
  }
}

export class ReplicationTimeout extends Error {
  override readonly name = 'ReplicationTimeout'
  constructor(schema: string, ms: number) {
    super(`the other server did not apply the changes of ${schema} within ${ms} ms`)
  }
}

/** Whether a subscription has an apply worker running on its server right now (false: it gets none, or keeps failing). */
export async function subscriptionStreaming(pool: pg.Pool, name: string): Promise<boolean> {
  const r = await pool.query<{pid: number | null}>('SELECT pid FROM pg_stat_subscription WHERE subname = $1 AND relid IS NULL', [name])
  return r.rows.some((x) => x.pid !== null)
}

/** A stream that has had no apply worker for a while: waiting on it longer helps nothing. */
export class StreamStalled extends Error {
  override readonly name = 'StreamStalled'
  constructor(subscription: string, server: string, seconds: number) {
    super(
      `The subscription ${subscription} on ${server} has had no apply worker for ${seconds} s, so its stream does not move; ` +
        `the server may be out of logical replication workers (max_logical_replication_workers, max_worker_processes) or its worker keeps failing (see ${server}'s log)`,
    )
  }
}

/**
 * Waits until a marker written on the publisher is applied on the subscriber, up to timeoutMs in all, in
 * rounds of at most 5 s; between rounds it checks the subscription has a worker, and throws StreamStalled
 * once it has had none for `stalledMs` (a stream without a worker would be waited on to the end for
 * nothing). Returns the lag of the round that got through; throws ReplicationTimeout at the end.
 */
export async function waitForStream(opts: {
  publisher: pg.Pool
  subscriber: pg.Pool
  subscriberName: string
  subscription: string
  schema: string
  timeoutMs: number
  stalledMs?: number
  onRound?(lagMs: number): void
  signal?: AbortSignal
}): Promise<number> {
  const deadline = performance.now() + opts.timeoutMs
  const stalledMs = opts.stalledMs ?? 10_000
  let noWorkerSince: number | undefined
  for (;;) {
    if (opts.signal?.aborted) throw new MoveInterrupted()
    try {
      return await markerRoundTrip(opts.publisher, opts.subscriber, opts.schema, Math.min(5000, Math.max(1, deadline - performance.now())))
    } catch (err) {
      if (!(err instanceof ReplicationTimeout)) throw err
      if (performance.now() >= deadline) throw new ReplicationTimeout(opts.schema, opts.timeoutMs)
    }
    opts.onRound?.(Number.POSITIVE_INFINITY)
    if (await subscriptionStreaming(opts.subscriber, opts.subscription)) {
      noWorkerSince = undefined
    } else {
      noWorkerSince ??= performance.now()
      if (performance.now() - noWorkerSince >= stalledMs) throw new StreamStalled(opts.subscription, opts.subscriberName, Math.round((performance.now() - noWorkerSince) / 1000))
    }
  }
}
