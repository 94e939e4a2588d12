import type pg from 'pg'

import {shardSchemaSql} from '../ddl.js'
import {q} from './names.js'
import {fenceTriggersSql} from './server-objects.js'

/**
 * The shard's schema on the target, made by the same DDL as `shards init` (tables, the id sequence,
 * next_id() with the same shard id), with every index and constraint that needs one (primary keys,
 * unique constraints, plain indexes) and every foreign key left out until the copy is done: building an
 * index once over the copied rows is several times cheaper than maintaining it row by row (a 1 M-row
 * photos table: 1.1 s to copy and 0.3 s to index, against 2.5 s to copy into its primary key). The
 * subscription starts only after they are built (it needs the primary keys to find rows). The fence
 * triggers go on both sides.
 */

export interface DeferredIndex {
  table: string
  name: string
  /** CREATE INDEX … for a plain index, or the constraint definition (PRIMARY KEY (…), UNIQUE (…), FOREIGN KEY …). */
  definition: string
  kind: 'index' | 'constraint' | 'foreign key'
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

/** Indexes (primary keys included) and foreign keys of a schema's tables. */
export async function deferredIndexes(pool: pg.Pool | pg.ClientBase, schema: string): Promise<DeferredIndex[]> {
  const r = await pool.query<{table: string; name: string; indexdef: string; condef: string | null; contype: string | null}>(
    `SELECT t.relname AS table, i.relname AS name, pg_get_indexdef(x.indexrelid) AS indexdef, pg_get_constraintdef(con.oid) AS condef, con.contype::text
     FROM pg_index x
     JOIN pg_class i ON i.oid = x.indexrelid
     JOIN pg_class t ON t.oid = x.indrelid
     JOIN pg_namespace n ON n.oid = t.relnamespace
     LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.conrelid = t.oid AND con.contype IN ('p', 'u', 'x')
     WHERE n.nspname = $1
     UNION ALL
     SELECT t.relname, con.conname, NULL, pg_get_constraintdef(con.oid), 'f'
     FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE n.nspname = $1 AND con.contype = 'f'
     ORDER BY 1, 2`,
    [schema],
  )
  return r.rows.map((x) => ({
    table: x.table,
    name: x.name,
    definition: x.condef ?? x.indexdef,
    kind: x.contype === 'f' ? 'foreign key' : x.contype ? 'constraint' : 'index',
  }))
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
  /** The move making this copy: the schema is marked as its own (see schemaMadeBy). */
  jobId?: number,
): Promise<DeferredIndex[]> {
  const deferred = await deferredIndexes(source, schema)
  // Foreign keys first: they depend on the keys they reference.
  const drops = [...deferred.filter((ix) => ix.kind === 'foreign key'), ...deferred.filter((ix) => ix.kind !== 'foreign key')].map((ix) =>
    ix.kind === 'index' ? `DROP INDEX IF EXISTS ${q(schema)}.${q(ix.name)};` : `ALTER TABLE ${q(schema)}.${q(ix.table)} DROP CONSTRAINT IF EXISTS ${q(ix.name)};`,
  )
  const tables = await schemaTables(source, schema)
  const mark = jobId === undefined ? '' : `CREATE SCHEMA IF NOT EXISTS ${q(schema)};\n${markSchemaSql(schema, jobId)}\n`
  await target.query(`${mark}${shardSchemaSql(shard, epoch)}`)
  // Tables the source has beyond the shard DDL (added by hand or by a later migration) are made from its catalog.
  const have = new Set(await schemaTables(target, schema))
  const extra = await extraTablesSql(source, schema, tables.filter((t) => !have.has(t)), await sequenceNames(target, schema))
  await target.query(`${extra}\n${drops.join('\n')}\n${fenceTriggersSql(schema, tables)}`)
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

async function sequenceNames(pool: pg.Pool, schema: string): Promise<Set<string>> {
  const r = await pool.query<{name: string}>('SELECT sequencename AS name FROM pg_sequences WHERE schemaname = $1', [schema])
  return new Set(r.rows.map((x) => x.name))
}

/**
 * CREATE statements for tables of the source's schema that the shard DDL does not make: their sequences
 * (those of serial columns; identity columns make their own), then each table's columns with their types,
 * NOT NULL, defaults, identity and generated expressions. Keys and indexes are not here: they are deferred
 * like every other table's (deferredIndexes) and built after the copy.
 */
export async function extraTablesSql(source: pg.Pool, schema: string, tables: readonly string[], targetSequences: ReadonlySet<string>): Promise<string> {
  if (tables.length === 0) return ''
  const seqs = await source.query<{name: string; type: string; start: string; inc: string; min: string; max: string; cycle: boolean}>(
    `SELECT c.relname AS name, format_type(s.seqtypid, NULL) AS type, s.seqstart::text AS start, s.seqincrement::text AS inc,
            s.seqmin::text AS min, s.seqmax::text AS max, s.seqcycle AS cycle
     FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i')`,
    [schema],
  )
  const cols = await source.query<{table: string; name: string; type: string; notnull: boolean; def: string | null; generated: string; identity: string}>(
    `SELECT c.relname AS table, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
            pg_get_expr(d.adbin, d.adrelid) AS def, a.attgenerated::text AS generated, a.attidentity::text AS identity
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE n.nspname = $1 AND c.relname = ANY($2) AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY c.relname, a.attnum`,
    [schema, tables],
  )
  const out = seqs.rows
    .filter((x) => !targetSequences.has(x.name))
    .map(
      (x) =>
        `CREATE SEQUENCE IF NOT EXISTS ${q(schema)}.${q(x.name)} AS ${x.type} INCREMENT BY ${BigInt(x.inc)} MINVALUE ${BigInt(x.min)} MAXVALUE ${BigInt(x.max)} START WITH ${BigInt(x.start)}${x.cycle ? ' CYCLE' : ''};`,
    )
  for (const table of tables) {
    const defs = cols.rows
      .filter((c) => c.table === table)
      .map((c) => {
        const extra =
          c.generated === 's'
            ? ` GENERATED ALWAYS AS (${c.def}) STORED`
            : c.identity === 'a' || c.identity === 'd'
              ? ' GENERATED BY DEFAULT AS IDENTITY'
              : c.def !== null
                ? ` DEFAULT ${c.def}`
                : ''
        return `${q(c.name)} ${c.type}${c.notnull ? ' NOT NULL' : ''}${extra}`
      })
    out.push(`CREATE TABLE IF NOT EXISTS ${q(schema)}.${q(table)} (${defs.join(', ')});`)
  }
  return out.join('\n')
}

/** What prepareTargetSchema left out that the target does not have yet (a resumed copy may have some). */
export async function missingIndexes(source: pg.Pool, target: pg.Pool, schema: string): Promise<DeferredIndex[]> {
  const have = new Set((await deferredIndexes(target, schema)).map((ix) => `${ix.table}.${ix.name}`))
  return (await deferredIndexes(source, schema)).filter((ix) => !have.has(`${ix.table}.${ix.name}`))
}

/**
 * Builds deferred indexes and keys on the target, all at once; foreign keys are added NOT VALID
 * (enforced for every new row from then on; call this for them once the keys they reference exist).
 * Their check of the copied rows is left to validateForeignKeys: those rows are the source's, where the
 * keys hold, and verify compares them all.
 */
export async function buildIndexes(target: pg.Pool, schema: string, list: readonly DeferredIndex[]): Promise<void> {
  // Each build sorts its table once; a larger sort memory than the default keeps that sort in memory.
  // A statement list runs as one implicit transaction: SET LOCAL holds for the build, a failure leaves the session clean.
  await Promise.all(
    list.map((ix) =>
      target.query(
        ix.kind === 'index'
          ? `SET LOCAL maintenance_work_mem = '256MB'; ${ix.definition}`
          : `SET LOCAL maintenance_work_mem = '256MB'; ALTER TABLE ${q(schema)}.${q(ix.table)} ADD CONSTRAINT ${q(ix.name)} ${ix.definition}${ix.kind === 'foreign key' ? ' NOT VALID' : ''}`,
      ),
    ),
  )
}

/** Checks the copied rows against the foreign keys added NOT VALID (no write waits for it). */
export async function validateForeignKeys(pool: pg.Pool, schema: string): Promise<void> {
  const r = await pool.query<{table: string; name: string}>(
    `SELECT t.relname AS table, con.conname AS name FROM pg_constraint con
     JOIN pg_class t ON t.oid = con.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE n.nspname = $1 AND con.contype = 'f' AND NOT con.convalidated`,
    [schema],
  )
  await Promise.all(r.rows.map((x) => pool.query(`ALTER TABLE ${q(schema)}.${q(x.table)} VALIDATE CONSTRAINT ${q(x.name)}`)))
}

export async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS ${q(schema)} CASCADE`)
}

/**
 * Who made a shard schema on a server: a move marks the copy it makes with a comment naming its job, in
 * the statement that creates it, so a copy is dropped only by (or after) the job that made it. undefined:
 * no such schema; null: there is one, but no move made it (a shard's home from `shards init`, or someone's).
 */
const MADE_BY = 'feedops move job '

export function markSchemaSql(schema: string, jobId: number): string {
  return `COMMENT ON SCHEMA ${q(schema)} IS '${MADE_BY}${jobId}';`
}

export async function schemaMadeBy(pool: pg.Pool | pg.ClientBase, schema: string): Promise<number | null | undefined> {
  const r = await pool.query<{comment: string | null}>("SELECT obj_description(oid, 'pg_namespace') AS comment FROM pg_namespace WHERE nspname = $1", [schema])
  if (r.rows.length === 0) return undefined
  const m = new RegExp(`^${MADE_BY}(\\d+)$`).exec(r.rows[0]!.comment ?? '')
  return m ? Number(m[1]) : null
}

/** What a schema holds, for a message naming it: its tables, and whether any has a row. */
export async function schemaContents(pool: pg.Pool, schema: string): Promise<{tables: number; rows: boolean; text: string}> {
  const tables = await schemaTables(pool, schema)
  const rows =
    tables.length > 0 &&
    (await pool.query<{any: boolean}>(`SELECT ${tables.map((t) => `EXISTS (SELECT 1 FROM ${q(schema)}.${q(t)})`).join(' OR ')} AS any`)).rows[0]!.any
  const text = tables.length === 0 ? 'no tables' : `${tables.length} table${tables.length === 1 ? '' : 's'}, ${rows ? 'with rows' : 'empty'}`
  return {tables: tables.length, rows, text}
}

/** A schema on `server` that the move (job `jobId`) did not make and must not touch. */
export class ForeignSchema extends Error {
  override readonly name = 'ForeignSchema'
  constructor(
    readonly server: string,
    readonly schema: string,
    readonly madeBy: number | null,
  ) {
    super(`${server} holds a schema ${schema} that ${madeBy === null ? 'no move made' : `job ${madeBy}, not this move, made`}; it was left as it is`)
  }
}

/** Drops a move's copy only when that move made it; throws ForeignSchema otherwise (no schema: nothing to do). */
export async function dropJobCopy(pool: pg.Pool, server: string, schema: string, jobId: number): Promise<void> {
  const by = await schemaMadeBy(pool, schema)
  if (by === undefined) return
  if (by !== jobId) throw new ForeignSchema(server, schema, by)
  await dropSchema(pool, schema)
}
