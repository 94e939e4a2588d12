import type pg from 'pg'

import {errorText} from '../../errors.js'
import {describeUrl} from '../reach.js'

/**
 * Checks one server can take part in a move: reachable, PostgreSQL ≥ 15, wal_level = logical, replication
 * slots and WAL senders to spare, and (on the source) a primary key on every table of the schema, which
 * logical replication needs to apply updates and deletes. Returns the problems found (empty = fine).
 */
export interface ServerCheck {
  name: string
  url: string
  pool: pg.Pool
  /** Slots and WAL senders the move needs on this server. */
  slots: number
  senders: number
  /** Schema whose tables must all have a primary key (the source's). */
  schema?: string
}

export async function checkServer(s: ServerCheck): Promise<string[]> {
  let row: {version: number; wal_level: string; slots: number; used_slots: number; senders: number; used_senders: number}
  try {
    const r = await s.pool.query<typeof row>(`
      SELECT current_setting('server_version_num')::int AS version, current_setting('wal_level') AS wal_level,
             current_setting('max_replication_slots')::int AS slots, (SELECT count(*)::int FROM pg_replication_slots) AS used_slots,
             current_setting('max_wal_senders')::int AS senders, (SELECT count(*)::int FROM pg_stat_replication) AS used_senders`)
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
