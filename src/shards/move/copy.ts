import {pipeline} from 'node:stream/promises'
import {setTimeout as sleep} from 'node:timers/promises'

import pg from 'pg'
import {from as copyFrom, to as copyTo} from 'pg-copy-streams'

import {MoveInterrupted} from './context.js'
import {MOVE_SCHEMA, q, quoteLiteral} from './names.js'

/**
 * The initial copy of a shard schema, as Citus's shard mover does it: a logical replication slot is made
 * on the source with an exported snapshot; the tables are copied under that snapshot by several streams
 * at once (binary COPY out of the source piped into COPY into the target, large tables split into ranges
 * of pages), into tables that have no indexes yet; the caller builds each table's indexes once its rows
 * are in, then subscribes from the slot, which holds exactly the changes made after the snapshot.
 *
 * Splitting by page ranges (ctid, as pgcopydb does) needs no index and reads each page once. A range
 * ends where the table ended when the snapshot was taken; the last range is open, so nothing visible to
 * the snapshot is missed even if the table grew.
 */

/** Copy streams at once (each a source and a target session); more than the cores only adds waiting. */
export const COPY_STREAMS = 2

/** Pages per range of a large table (64 MB of 8 kB pages). */
const RANGE_PAGES = 8192

export interface CopyPart {
  table: string
  columns: string[]
  /** Page range [from, to); to = null: to the end. */
  from: number
  to: number | null
}

/**
 * Splits each table into page ranges, a few per stream, so the streams stay busy to the end. Smallest
 * table first: each table's indexes can be built as soon as its rows are in, beside the larger copies.
 */
export function planParts(tables: readonly {table: string; columns: string[]; pages: number}[], streams = COPY_STREAMS): CopyPart[] {
  const total = tables.reduce((a, t) => a + t.pages, 0)
  const size = Math.max(1, Math.min(RANGE_PAGES, Math.ceil(total / (streams * 4))))
  const parts: CopyPart[] = []
  for (const t of [...tables].sort((a, b) => a.pages - b.pages || a.table.localeCompare(b.table))) {
    const n = Math.max(1, Math.ceil(t.pages / size))
    for (let i = 0; i < n; i++) parts.push({table: t.table, columns: t.columns, from: i * size, to: i === n - 1 ? null : (i + 1) * size})
  }
  return parts
}

/** The SELECT of one part, under the snapshot. */
export function partSelect(schema: string, part: CopyPart): string {
  const cols = part.columns.map(q).join(', ')
  const where = [`ctid >= '(${part.from},0)'::tid`, ...(part.to === null ? [] : [`ctid < '(${part.to},0)'::tid`])].join(' AND ')
  return `SELECT ${cols} FROM ${q(schema)}.${q(part.table)} WHERE ${where}`
}

export interface SnapshotCopyOptions {
  sourceUrl: string
  /** The source's name, for messages. */
  sourceName?: string
  /** The target's name, for messages. */
  targetName?: string
  source: pg.Pool
  target: pg.Pool
  schema: string
  /** The slot the subscription will stream from; made here (it must not exist). */
  slot: string
  tables: readonly string[]
  /** Progress: parts done of all, rows so far. */
  onProgress?(done: number, parts: number, rows: number): void
  /** All rows of a table are in. */
  onTable?(table: string): void
  signal?: AbortSignal
  /** Longest wait for transactions open on the source to end before the slot's snapshot exists (default 60 s). */
  snapshotWaitMs?: number
  /** The slot waits for open transactions: who they are (said once, after a moment). */
  onWaiting?(text: string): void
}

/** A session on the source that the snapshot waits for. */
export interface Blocker {
  pid: number
  application: string
  state: string
  ageS: number
}

export function blockersText(blockers: readonly Blocker[]): string {
  if (blockers.length === 0) return 'none found any more'
  return blockers
    .map((b) => `pid ${b.pid} (application ${b.application ? `"${b.application}"` : 'unnamed'}, ${b.state} for ${b.ageS} s)`)
    .join(', ')
}

/** Transactions with an xid, open on the source since before `since`: what a new slot's snapshot waits for. */
async function openTransactions(source: pg.Pool, exceptPid: number): Promise<Blocker[]> {
  const r = await source.query<{pid: number; application: string; state: string; age: string}>(
    `SELECT pid, application_name AS application, coalesce(state, '') AS state, extract(epoch FROM clock_timestamp() - xact_start)::int::text AS age
     FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> $1 AND pid <> pg_backend_pid() ORDER BY xact_start`,
    [exceptPid],
  )
  return r.rows.map((x) => ({pid: x.pid, application: x.application, state: x.state, ageS: Number(x.age)}))
}

/** A server of the copy went away part-way: one sentence naming it, with the error the driver gave. */
export class CopyServerLost extends Error {
  override readonly name = 'CopyServerLost'
  constructor(side: 'source' | 'target', server: string, cause: Error) {
    super(
      `The copy lost its connection to the ${side}, ${server} (${cause.message.replace(/[.\s]+$/, '')}); ` +
        `${side === 'target' ? 'the shard still serves from its source; ' : ''}once ${server} is back, run \`move\` again`,
    )
  }
}

/**
 * Settles (rejects) as soon as a session's connection dies, however pg learns of it (an ErrorResponse, a
 * socket error or a bare close): a COPY stream piped into a dead session must not be the only thing that
 * can end the wait, as its own events depend on where in the COPY the connection died.
 */
function whenLost(client: pg.PoolClient): {lost: Promise<never>; error(): Error | undefined; stop(): void} {
  let error: Error | undefined
  let fail: (err: Error) => void = () => undefined
  const lost = new Promise<never>((_, reject) => (fail = reject))
  lost.catch(() => undefined)
  const onError = (err: Error) => {
    error ??= err
    fail(error)
  }
  const onEnd = () => onError(new Error('Connection terminated unexpectedly'))
  client.on('error', onError)
  client.on('end', onEnd)
  return {
    lost,
    error: () => error,
    stop: () => {
      client.off('error', onError)
      client.off('end', onEnd)
    },
  }
}

/** The copy's snapshot did not come within its bound: the transactions it waited for are named. */
export class SnapshotWaitTimeout extends Error {
  override readonly name = 'SnapshotWaitTimeout'
  constructor(server: string, waitedS: number, blockers: readonly Blocker[]) {
    super(
      `The copy waited ${waitedS} s for transactions open on ${server} to end and gave up: ${blockersText(blockers)}; ` +
        'end them (or wait for them), then run `move` again',
    )
  }
}

/**
 * CREATE_REPLICATION_SLOT with an exported snapshot waits for every transaction open on the source to end,
 * with no timeout of its own: it is bounded here, and given up on Ctrl-C, by ending its session (which
 * leaves no slot: one still waiting for its snapshot is dropped with the session).
 */
async function createSlot(repl: pg.Client, opts: SnapshotCopyOptions): Promise<string> {
  const made = repl.query<{snapshot_name: string}>(`CREATE_REPLICATION_SLOT ${q(opts.slot)} LOGICAL pgoutput (SNAPSHOT 'export')`)
  made.catch(() => undefined)
  const bound = opts.snapshotWaitMs ?? 60_000
  // The walsender's pid, from the connection's BackendKeyData (pg sets it; its typings leave it out).
  const pid = (repl as unknown as {processID?: number}).processID ?? -1
  const started = performance.now()
  let said = false
  for (;;) {
    const done = await Promise.race([made.then((r) => r.rows[0]!.snapshot_name), sleep(250).then(() => undefined)])
    if (done !== undefined) return done
    const waited = performance.now() - started
    const aborted = opts.signal?.aborted ?? false
    if (!aborted && waited < bound && (said || waited < 2000)) continue
    const blockers = await openTransactions(opts.source, pid).catch(() => [])
    if (!aborted && waited < bound) {
      said = true
      opts.onWaiting?.(`waiting for transactions open on the source to end: ${blockersText(blockers)}`)
      continue
    }
    await opts.source.query('SELECT pg_terminate_backend($1)', [pid]).catch(() => undefined)
    if (aborted) throw new MoveInterrupted()
    throw new SnapshotWaitTimeout(opts.sourceName ?? 'the source', Math.round(waited / 1000), blockers)
  }
}

/** Makes the slot and copies every table under its snapshot; returns the rows copied. */
export async function snapshotCopy(opts: SnapshotCopyOptions): Promise<number> {
  const {schema} = opts
  // A walsender session: its exported snapshot lives until this session runs another command or ends.
  const repl = new pg.Client({connectionString: opts.sourceUrl, replication: 'database', application_name: 'feedops move copy'} as pg.ClientConfig)
  repl.on('error', () => undefined)
  await repl.connect()
  try {
    const snapshot = await createSlot(repl, opts)
    const shapes = await opts.source.query<{table: string; columns: string[]; pages: string}>(
      `SELECT c.relname AS table, pg_relation_size(c.oid) / current_setting('block_size')::int AS pages,
              array_agg(a.attname::text ORDER BY a.attnum) AS columns
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       WHERE n.nspname = $1 AND c.relname = ANY($2) GROUP BY c.oid, c.relname`,
      [schema, opts.tables],
    )
    const parts = planParts(shapes.rows.map((r) => ({table: r.table, columns: r.columns, pages: Number(r.pages)})))
    const left = new Map<string, number>()
    for (const p of parts) left.set(p.table, (left.get(p.table) ?? 0) + 1)
    let next = 0
    let done = 0
    let rows = 0
    let failed = false
    const stream = async (first: boolean) => {
      const src = await opts.source.connect()
      const dst = await opts.target.connect().catch((err: Error) => {
        src.release()
        throw new CopyServerLost('target', opts.targetName ?? 'the target', err)
      })
      const srcLost = whenLost(src)
      const dstLost = whenLost(dst)
      let broken: Error | undefined
      try {
        await src.query(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`)
        // The marker row travels with the shard (the stream's later updates of it need it on the target).
        if (first) await copyMarker(src, dst, schema)
        while (next < parts.length && !failed) {
          if (opts.signal?.aborted) throw new MoveInterrupted()
          const part = parts[next++]!
          // As a subscription's own copy does: the rows are the source's, already checked there, so the
          // target's triggers (foreign keys, the fence) do not fire for them.
          await dst.query('BEGIN; SET LOCAL session_replication_role = replica')
          const into = dst.query(copyFrom(`COPY ${q(schema)}.${q(part.table)} (${part.columns.map(q).join(', ')}) FROM STDIN (FORMAT binary)`))
          const out = src.query(copyTo(`COPY (${partSelect(schema, part)}) TO STDOUT (FORMAT binary)`))
          const piped = pipeline(out, into)
          piped.catch(() => undefined)
          // Either session dying ends the part at once, even where the pipeline would not hear of it.
          await Promise.race([piped, srcLost.lost, dstLost.lost])
          await dst.query('COMMIT')
          rows += Number(into.rowCount ?? 0)
          opts.onProgress?.(++done, parts.length, rows)
          left.set(part.table, left.get(part.table)! - 1)
          if (left.get(part.table) === 0) opts.onTable?.(part.table)
        }
        await src.query('COMMIT')
      } catch (err) {
        failed = true
        broken = err as Error
        // A server's FATAL reaches the query before its socket closes: a moment for the close to arrive.
        if (!(err instanceof CopyServerLost)) await Promise.race([srcLost.lost, dstLost.lost, sleep(200)]).catch(() => undefined)
        // Said as the server that went away, not as the driver's words for a socket.
        if (dstLost.error()) throw new CopyServerLost('target', opts.targetName ?? 'the target', dstLost.error()!)
        if (srcLost.error()) throw new CopyServerLost('source', opts.sourceName ?? 'the source', srcLost.error()!)
        throw err
      } finally {
        srcLost.stop()
        dstLost.stop()
        // A session that failed mid-COPY is closed, not handed back to the pool.
        src.release(broken)
        dst.release(broken)
      }
    }
    // Every stream ends (a failure stops the others at their next part) before the snapshot's session does.
    const ended = await Promise.allSettled(Array.from({length: Math.min(COPY_STREAMS, parts.length)}, (_, i) => stream(i === 0)))
    const failure = ended.find((e) => e.status === 'rejected')
    if (failure) throw failure.reason
    return rows
  } finally {
    await repl.end().catch(() => undefined)
  }
}

async function copyMarker(src: pg.ClientBase, dst: pg.ClientBase, schema: string): Promise<void> {
  const r = await src.query<{token: string}>(`SELECT token FROM ${MOVE_SCHEMA}.marker WHERE schema_name = $1`, [schema])
  const token = r.rows[0]?.token
  if (token === undefined) return
  await dst.query(
    `INSERT INTO ${MOVE_SCHEMA}.marker (schema_name, token) VALUES ($1, $2) ON CONFLICT (schema_name) DO UPDATE SET token = EXCLUDED.token`,
    [schema, token],
  )
}
