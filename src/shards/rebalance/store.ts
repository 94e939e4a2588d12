import type pg from 'pg'

import {ExitCode, UserError} from '../../errors.js'
import {ensureCatalog} from '../catalog.js'
import type {RebalancePlan} from './plan.js'
import {MOVE_OUTCOMES, OPEN_STATUSES, REBALANCE_STATUSES, type MoveOutcome, type RebalanceStatus} from './tables.js'

export {MOVE_OUTCOMES, OPEN_STATUSES, REBALANCE_STATUSES, type MoveOutcome, type RebalanceStatus}

/**
 * A rebalance in the catalog: one row naming its plan (shard_rebalances), one row per planned move
 * (shard_rebalance_moves) linked to the move's ordinary job in shard_moves once it starts. What each move
 * did comes from its job row, so `--status`, resume and `shards moves` read the same rows.
 *
 * At most one open rebalance (running, stopped, interrupted, failed): running `rebalance` again continues
 * it. The process running it holds a session advisory lock (REBALANCE_LOCK_CLASS, 0) in the catalog; a
 * killed runner frees it at once. `--stop` sets stop_requested, which the runner reads between moves.
 * The tables are a numbered catalog migration (tables.ts, run by ensureCatalog from write commands only).
 */
export const ensureRebalanceTables = ensureCatalog
const list = (xs: readonly string[]) => xs.map((x) => `'${x}'`).join(', ')
export const REBALANCE_LOCK_CLASS = 0x7262616c // "rbal"

/** True once the catalog has the rebalance tables (a read-only check: creating them is ensureCatalog's). */
async function hasTables(client: pg.ClientBase | pg.Pool): Promise<boolean> {
  const r = await client.query<{t: string | null}>("SELECT to_regclass('shard_rebalance_moves')::text AS t")
  return r.rows[0]?.t != null
}

export interface RebalanceOptions {
  concurrency: number | null
  perServer: number
  complete: boolean
}

export interface RebalanceRow {
  id: number
  plan: RebalancePlan
  options: RebalanceOptions
  status: RebalanceStatus
  stopRequested: boolean
  owner: string | null
  createdAt: string
  updatedAt: string
  finishedAt: string | null
}

export interface RebalanceMoveRow {
  ord: number
  shard: number
  source: string
  target: string
  rows: number
  bytes: number
  jobId: number | null
  outcome: MoveOutcome
  error: string | null
  startedAt: string | null
  finishedAt: string | null
}

const REBALANCE_COLUMNS = `id::int, plan, options, status, stop_requested AS "stopRequested", owner,
  to_json(created_at)#>>'{}' AS "createdAt", to_json(updated_at)#>>'{}' AS "updatedAt", to_json(finished_at)#>>'{}' AS "finishedAt"`
const MOVE_COLUMNS = `ord, shard, source, target, rows::float8 AS rows, bytes::float8 AS bytes, job_id::int AS "jobId", outcome, error,
  to_json(started_at)#>>'{}' AS "startedAt", to_json(finished_at)#>>'{}' AS "finishedAt"`

/** The open rebalance, else the newest one (undefined when there is none, or no table yet: read-only). */
export async function latestRebalance(catalog: pg.ClientBase | pg.Pool, opts: {openOnly?: boolean} = {}): Promise<RebalanceRow | undefined> {
  if (!(await hasTables(catalog))) return undefined
  const r = await catalog.query<RebalanceRow>(
    `SELECT ${REBALANCE_COLUMNS} FROM shard_rebalances ${opts.openOnly ? `WHERE status IN (${list(OPEN_STATUSES)})` : ''}
      ORDER BY (status IN (${list(OPEN_STATUSES)})) DESC, id DESC LIMIT 1`,
  )
  return r.rows[0]
}

export async function rebalanceMoves(catalog: pg.ClientBase | pg.Pool, id: number): Promise<RebalanceMoveRow[]> {
  const r = await catalog.query<RebalanceMoveRow>(`SELECT ${MOVE_COLUMNS} FROM shard_rebalance_moves WHERE rebalance_id = $1 ORDER BY ord`, [id])
  return r.rows
}

/** Records a new rebalance and its moves (all pending), in one transaction. */
export async function createRebalance(client: pg.ClientBase, plan: RebalancePlan, options: RebalanceOptions, owner: string): Promise<RebalanceRow> {
  await client.query('BEGIN')
  try {
    const r = await client.query<RebalanceRow>(
      `INSERT INTO shard_rebalances (plan, options, status, owner) VALUES ($1, $2, 'running', $3) RETURNING ${REBALANCE_COLUMNS}`,
      [JSON.stringify(plan), JSON.stringify(options), owner],
    )
    const row = r.rows[0]!
    for (const [ord, m] of plan.moves.entries()) {
      await client.query('INSERT INTO shard_rebalance_moves (rebalance_id, ord, shard, source, target, rows, bytes) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
        row.id,
        ord,
        m.shard,
        m.from,
        m.to,
        Math.round(m.rows),
        Math.round(m.bytes),
      ])
    }
    await client.query('COMMIT')
    return row
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined)
    if ((err as {code?: string}).code === '23505') {
      throw new UserError('Another rebalance was started at the same moment.', {fix: 'See `feedops shards rebalance --status`.', exitCode: ExitCode.nothingDone})
    }
    throw err
  }
}

export async function setRebalance(
  catalog: pg.ClientBase | pg.Pool,
  id: number,
  u: {status?: RebalanceStatus; stopRequested?: boolean; owner?: string; options?: RebalanceOptions},
): Promise<void> {
  const closed = u.status === 'done' || u.status === 'abandoned'
  await catalog.query(
    `UPDATE shard_rebalances SET status = coalesce($2, status), stop_requested = coalesce($3, stop_requested), owner = coalesce($4, owner),
       options = coalesce($5::jsonb, options), updated_at = now(), finished_at = CASE WHEN $6::boolean THEN now() ELSE finished_at END WHERE id = $1`,
    [id, u.status ?? null, u.stopRequested ?? null, u.owner ?? null, u.options ? JSON.stringify(u.options) : null, closed],
  )
}

export async function setMove(
  catalog: pg.ClientBase | pg.Pool,
  id: number,
  shard: number,
  u: {outcome: MoveOutcome; jobId?: number; error?: string | null; started?: boolean},
): Promise<void> {
  const finished = u.outcome !== 'pending' && u.outcome !== 'running'
  await catalog.query(
    `UPDATE shard_rebalance_moves SET outcome = $3, job_id = coalesce($4, job_id), error = CASE WHEN $5::boolean THEN $6 ELSE error END,
       started_at = CASE WHEN $7::boolean THEN now() ELSE started_at END, finished_at = CASE WHEN $8::boolean THEN now() END
     WHERE rebalance_id = $1 AND shard = $2`,
    [id, shard, u.outcome, u.jobId ?? null, u.error !== undefined, u.error ?? null, Boolean(u.started), finished],
  )
}

export async function stopRequested(catalog: pg.Pool, id: number): Promise<boolean> {
  const r = await catalog.query<{stop: boolean}>('SELECT stop_requested AS stop FROM shard_rebalances WHERE id = $1', [id])
  return r.rows[0]?.stop ?? false
}

export interface RunnerLock {
  client: pg.PoolClient
  release(): Promise<void>
}

/** The rebalance runner's lock; UserError exit 3 when another process runs a rebalance. */
export async function lockRunner(catalog: pg.Pool): Promise<RunnerLock> {
  const client = await catalog.connect()
  client.on('error', () => undefined)
  const got = await client.query<{ok: boolean}>('SELECT pg_try_advisory_lock($1, 0) AS ok', [REBALANCE_LOCK_CLASS])
  if (!got.rows[0]?.ok) {
    const open = await latestRebalance(client, {openOnly: true}).catch(() => undefined)
    client.release()
    throw new UserError(`Another process is running a rebalance${open ? ` (rebalance ${open.id}, owner ${open.owner ?? 'unknown'})` : ''}.`, {
      fix: 'Follow it with `feedops shards rebalance --status`, or stop it with `feedops shards rebalance --stop`.',
      exitCode: ExitCode.nothingDone,
    })
  }
  return {
    client,
    release: async () => {
      await client.query('SELECT pg_advisory_unlock($1, 0)', [REBALANCE_LOCK_CLASS]).catch(() => undefined)
      client.release()
    },
  }
}

/** True while some process holds the runner's lock. */
export async function runnerAlive(catalog: pg.ClientBase | pg.Pool): Promise<boolean> {
  const r = await catalog.query(
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objid = 0 AND objsubid = 2 AND granted",
    [REBALANCE_LOCK_CLASS],
  )
  return (r.rowCount ?? 0) > 0
}
