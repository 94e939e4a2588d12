import type pg from 'pg'

import {shardSchemaSql} from '../ddl.js'
import {q} from './names.js'
import {fenceTriggersSql} from './server-objects.js'

/**
 * The shard's schema on the target, made by the same DDL as `shards init` (tables, primary keys, the id
 * sequence, next_id() with the same shard id), with the secondary indexes left out until the copy is done
 * (building them once over the copied rows is cheaper than maintaining them row by row), and the fence
 * triggers on both sides.
 */

export interface SecondaryIndex {
  table: string
  name: string
  /** CREATE INDEX … for a plain index, or the constraint definition (UNIQUE (…)) for a constraint's index. */
  definition: string
  constraint: boolean
}

/** Tables of a schema, in name order. */
export async function schemaTables(pool: pg.Pool | pg.ClientBase, schema: string): Promise<string[]> {
  const r = await pool.query<{relname: string}>(
    `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1`,
    [schema],
  )
  return r.rows.map((x) => x.relname)
}

export async function schemaExists(pool: pg.Pool | pg.ClientBase, schema: string): Promise<boolean> {
  const r = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])
  return (r.rowCount ?? 0) > 0
}

/** Indexes other than primary keys (those stay: replication needs them to find rows). */
export async function secondaryIndexes(pool: pg.Pool | pg.ClientBase, schema: string): Promise<SecondaryIndex[]> {
  const r = await pool.query<{table: string; name: string; indexdef: string; condef: string | null}>(
    `SELECT t.relname AS table, i.relname AS name, pg_get_indexdef(x.indexrelid) AS indexdef, pg_get_constraintdef(con.oid) AS condef
     FROM pg_index x
     JOIN pg_class i ON i.oid = x.indexrelid
     JOIN pg_class t ON t.oid = x.indrelid
     JOIN pg_namespace n ON n.oid = t.relnamespace
     LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.conrelid = t.oid AND con.contype IN ('u', 'x')
     WHERE n.nspname = $1 AND NOT x.indisprimary ORDER BY 1, 2`,
    [schema],
  )
  return r.rows.map((x) => ({table: x.table, name: x.name, definition: x.condef ?? x.indexdef, constraint: x.condef !== null}))
}

/** Columns per table (name and type, in order), to check both copies have the same shape. */
async function columnShapes(pool: pg.Pool, schema: string): Promise<Map<string, string>> {
  const r = await pool.query<{table_name: string; cols: string}>(
    `SELECT table_name, string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) AS cols
     FROM information_schema.columns WHERE table_schema = $1 GROUP BY table_name`,
    [schema],
  )
  return new Map(r.rows.map((x) => [x.table_name, x.cols]))
}

/**
 * Creates the schema on the target without the source's secondary indexes, puts the fence triggers on both
 * copies, and checks the two have the same tables and columns. Returns the deferred indexes. Safe to run
 * again before the copy starts.
 */
export async function prepareTargetSchema(
  source: pg.Pool,
  target: pg.Pool,
  shard: number,
  schema: string,
  epoch: bigint,
): Promise<SecondaryIndex[]> {
  const deferred = await secondaryIndexes(source, schema)
  const drops = deferred.map((ix) =>
    ix.constraint ? `ALTER TABLE ${q(schema)}.${q(ix.table)} DROP CONSTRAINT IF EXISTS ${q(ix.name)};` : `DROP INDEX IF EXISTS ${q(schema)}.${q(ix.name)};`,
  )
  const tables = await schemaTables(source, schema)
  await target.query(`${shardSchemaSql(shard, epoch)}\n${drops.join('\n')}\n${fenceTriggersSql(schema, tables)}`)
  await source.query(fenceTriggersSql(schema, tables))
  const [a, b] = await Promise.all([columnShapes(source, schema), columnShapes(target, schema)])
  const differ = [...new Set([...a.keys(), ...b.keys()])].filter((t) => a.get(t) !== b.get(t))
  if (differ.length > 0) {
    throw new Error(
      `the source's ${schema} differs from the shard DDL in ${differ.join(', ')} (columns or tables); bring it to the current DDL before moving it`,
    )
  }
  return deferred
}

/** Builds on the target the secondary indexes it does not have yet (after the copy). */
export async function buildSecondaryIndexes(source: pg.Pool, target: pg.Pool, schema: string): Promise<number> {
  const want = await secondaryIndexes(source, schema)
  const have = new Set((await secondaryIndexes(target, schema)).map((ix) => ix.name))
  const missing = want.filter((ix) => !have.has(ix.name))
  await Promise.all(
    missing.map((ix) =>
      target.query(ix.constraint ? `ALTER TABLE ${q(schema)}.${q(ix.table)} ADD CONSTRAINT ${q(ix.name)} ${ix.definition}` : ix.definition),
    ),
  )
  return missing.length
}

export async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS ${q(schema)} CASCADE`)
}
