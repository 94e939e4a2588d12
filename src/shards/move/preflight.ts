import type pg from 'pg'

import {errorText} from '../../errors.js'
import {describeUrl} from '../reach.js'

/**
 * Checks one server can take part in a move: reachable, PostgreSQL ≥ 15, wal_level = logical, replication
 * slots and WAL senders to spare, logical replication workers (and the background worker processes they
 * are) to spare for the subscription the move will run there, and (on the source) a primary key on every
 * table of the schema, which logical replication needs to apply updates and deletes. Returns the problems
 * found (empty = fine).
 *
 * Workers: every enabled subscription on a server holds one apply worker of max_logical_replication_workers
 * (it retries while it cannot get one), and each worker is also one of max_worker_processes, beside the
 * other background workers running (the launcher, parallel workers, extensions'). A subscription that gets
 * no worker never streams: preflight counts them rather than let a stream wait forever.
 */
export interface ServerCheck {
  name: string
  url: string
  pool: pg.Pool
  /** Slots and WAL senders the move needs on this server. */
  slots: number
  senders: number
  /** Logical replication apply workers the move needs on this server (its subscriptions: forward on the target, reverse on the source). */
  workers: number
  /** Schema whose tables must all have a primary key (the source's). */
  schema?: string
}

/** Backend types that are not background workers (they do not count against max_worker_processes). */
const NOT_BGWORKERS = [
  'client backend',
  'autovacuum launcher',
  'autovacuum worker',
  'background writer',
  'checkpointer',
  'walwriter',
  'walsender',
  'startup',
  'walreceiver',
  'archiver',
  'logger',
  'standalone backend',
  'io worker',
  'walsummarizer',
  'slotsync worker',
]

export async function checkServer(s: ServerCheck): Promise<string[]> {
  let row: {
    version: number
    wal_level: string
    slots: number
    used_slots: number
    senders: number
    used_senders: number
    lr_workers: number
    subscriptions: number
    bg_workers: number
    other_bgworkers: number
  }
  try {
    const r = await s.pool.query<typeof row>(
      `SELECT current_setting('server_version_num')::int AS version, current_setting('wal_level') AS wal_level,
             current_setting('max_replication_slots')::int AS slots, (SELECT count(*)::int FROM pg_replication_slots) AS used_slots,
             current_setting('max_wal_senders')::int AS senders, (SELECT count(*)::int FROM pg_stat_replication) AS used_senders,
             current_setting('max_logical_replication_workers')::int AS lr_workers,
             (SELECT count(*)::int FROM pg_subscription WHERE subenabled) AS subscriptions,
             current_setting('max_worker_processes')::int AS bg_workers,
             (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type <> ALL ($1::text[]) AND backend_type NOT LIKE 'logical replication%worker') AS other_bgworkers`,
      [NOT_BGWORKERS],
    )
    row = r.rows[0]!
  } catch (err) {
    return [`${s.name} (${describeUrl(s.url)}) is unreachable: ${errorText(err)}`]
  }
  const problems: string[] = []
  if (row.version < 150000) problems.push(`${s.name} runs PostgreSQL ${Math.floor(row.version / 10000)}; moves need 15 or later`)
  if (row.wal_level !== 'logical') problems.push(`${s.name} has wal_level = ${row.wal_level}; moves need wal_level = logical (restart after setting it)`)
  if (row.slots - row.used_slots < s.slots) {
    problems.push(`${s.name} has ${row.slots - row.used_slots} free replication slots of ${row.slots}; the move needs ${s.slots}`)
  }
  if (row.senders - row.used_senders < s.senders) {
    problems.push(`${s.name} has ${row.senders - row.used_senders} free WAL senders of ${row.senders}; the move needs ${s.senders}`)
  }
  const freeApply = row.lr_workers - row.subscriptions
  if (freeApply < s.workers) {
    problems.push(
      `${s.name} has ${Math.max(0, freeApply)} free logical replication workers of ${row.lr_workers} (max_logical_replication_workers; ${row.subscriptions} enabled subscriptions hold the rest); the move needs ${s.workers}`,
    )
  }
  const freeProcesses = row.bg_workers - row.other_bgworkers - row.subscriptions
  if (freeProcesses < s.workers) {
    problems.push(
      `${s.name} has ${Math.max(0, freeProcesses)} free background worker processes of ${row.bg_workers} (max_worker_processes; ${row.other_bgworkers} other background workers and ${row.subscriptions} subscriptions use the rest); the move needs ${s.workers}`,
    )
  }
  if (s.schema) {
    const r = await s.pool.query<{relname: string}>(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary)
       ORDER BY 1`,
      [s.schema],
    )
    if (r.rows.length > 0) problems.push(`${s.schema} on ${s.name} has tables without a primary key: ${r.rows.map((x) => x.relname).join(', ')}`)
  }
  return problems
}
