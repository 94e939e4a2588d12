import type pg from 'pg'

import {FENCE_SQLSTATE} from '../fence.js'
import {MOVE_SCHEMA, q, quoteLiteral} from './names.js'

/**
 * What a move keeps on each physical server it touches, in the schema feedops_move:
 *
 * - fence(schema_name, job, expires_at): a live row (expires_at NULL or in the future) makes every write
 *   statement on that shard schema's tables fail with FENCE_SQLSTATE. The check is a statement trigger on
 *   each table, so the server itself refuses the write whatever map the writer holds. Logical replication
 *   apply workers run with session_replication_role = replica, where ordinary triggers do not fire, so a
 *   fenced copy still takes the changes replicated into it.
 * - marker(schema_name, token): a row per shard that a move's publication carries along with the shard's
 *   tables. Writing a new token on one side and seeing it on the other proves everything committed before
 *   it has been applied there (changes are applied in commit order). It measures the lag, and marks the
 *   consistent points of verify and cutover.
 */
const LOCK_KEY = [0x6d6f7665, -1] as const

const SERVER_DDL = `
CREATE SCHEMA IF NOT EXISTS ${MOVE_SCHEMA};
CREATE TABLE IF NOT EXISTS ${MOVE_SCHEMA}.fence (
  schema_name text PRIMARY KEY,
  job bigint NOT NULL,
  expires_at timestamptz
);
CREATE TABLE IF NOT EXISTS ${MOVE_SCHEMA}.marker (
  schema_name text PRIMARY KEY,
  token text NOT NULL
);
CREATE OR REPLACE FUNCTION ${MOVE_SCHEMA}.fence_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF EXISTS (SELECT 1 FROM ${MOVE_SCHEMA}.fence
             WHERE schema_name = TG_TABLE_SCHEMA AND (expires_at IS NULL OR expires_at > clock_timestamp())) THEN
    RAISE EXCEPTION 'logical shard schema % is fenced on this server (moved or being moved)', TG_TABLE_SCHEMA
      USING ERRCODE = '${FENCE_SQLSTATE}', HINT = 'Reload the shard map and write to the server it names.';
  END IF;
  RETURN NULL;
END
$fn$;
`

/** Creates feedops_move on a server (idempotent; concurrent moves serialize on an advisory lock). */
export async function ensureServerObjects(pool: pg.Pool): Promise<void> {
  const c = await pool.connect()
  try {
    await c.query('BEGIN')
    await c.query('SELECT pg_advisory_xact_lock($1, $2)', [...LOCK_KEY])
    await c.query(SERVER_DDL)
    await c.query('COMMIT')
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined)
    throw err
  } finally {
    c.release()
  }
}

/** The fence trigger on every table of a shard schema (idempotent). */
export function fenceTriggersSql(schema: string, tables: readonly string[]): string {
  return tables
    .map(
      (t) => `CREATE OR REPLACE TRIGGER feedops_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${q(schema)}.${q(t)}
  FOR EACH STATEMENT EXECUTE FUNCTION ${MOVE_SCHEMA}.fence_guard();`,
    )
    .join('\n')
}

/** Removes the fence triggers from a copy that serves alone again (after complete or revert). */
export function dropFenceTriggersSql(schema: string, tables: readonly string[]): string {
  return tables.map((t) => `DROP TRIGGER IF EXISTS feedops_fence ON ${q(schema)}.${q(t)};`).join('\n')
}

/** Fence row SQL: live for leaseMs from now (null = until lifted). */
export function setFenceSql(schema: string, jobId: number, leaseMs: number | null): string {
  const expires = leaseMs === null ? 'NULL' : `clock_timestamp() + ${Math.round(leaseMs)} * interval '1 millisecond'`
  return `INSERT INTO ${MOVE_SCHEMA}.fence (schema_name, job, expires_at) VALUES (${quoteLiteral(schema)}, ${jobId}, ${expires})
  ON CONFLICT (schema_name) DO UPDATE SET job = EXCLUDED.job, expires_at = EXCLUDED.expires_at`
}

/** Makes a shard's fence on this server lapse leaseMs from now. */
export async function leaseFence(pool: pg.Pool, schema: string, leaseMs: number): Promise<void> {
  await pool.query(`UPDATE ${MOVE_SCHEMA}.fence SET expires_at = clock_timestamp() + $2 * interval '1 millisecond' WHERE schema_name = $1`, [schema, Math.round(leaseMs)])
}

export async function liftFence(pool: pg.Pool | pg.ClientBase, schema: string): Promise<void> {
  await pool.query(`DELETE FROM ${MOVE_SCHEMA}.fence WHERE schema_name = $1`, [schema])
}

/** SQL that writes a new marker token for the schema (inside a transaction that must commit flushed, see writeMarker). */
export function markerSql(schema: string, token: string): string {
  return `INSERT INTO ${MOVE_SCHEMA}.marker (schema_name, token) VALUES (${quoteLiteral(schema)}, ${quoteLiteral(token)})
  ON CONFLICT (schema_name) DO UPDATE SET token = EXCLUDED.token`
}

/**
 * Writes a marker token in a transaction of its own whose commit is flushed at once even where
 * synchronous_commit is off (WAL senders send only flushed WAL, so the token would wait for the WAL writer).
 */
export async function writeMarker(c: pg.Pool | pg.ClientBase, schema: string, token: string): Promise<void> {
  await c.query(`BEGIN; SET LOCAL synchronous_commit = on; ${markerSql(schema, token)}; COMMIT`)
}

export async function readMarker(c: pg.Pool | pg.ClientBase, schema: string): Promise<string | null> {
  const r = await c.query<{token: string}>(`SELECT token FROM ${MOVE_SCHEMA}.marker WHERE schema_name = $1`, [schema])
  return r.rows[0]?.token ?? null
}
