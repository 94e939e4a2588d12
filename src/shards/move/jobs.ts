import {hostname} from 'node:os'

import type pg from 'pg'

import {ExitCode, UserError} from '../../errors.js'
import {LIVE_MOVE_STATUSES, MOVE_STATUSES} from '../catalog.js'

/**
 * The catalog's shard_moves table: one row per move. `phase` is the phase the job is in (or last
 * reached), `status` says whether it is running, failed (resumable by `move` again), flipped (the shard
 * serves from the target; reverse replication runs until complete or revert), completed or reverted.
 *
 * Who runs a job: the process holding the catalog session lock (MOVE_LOCK_CLASS, shard). A lock dies with
 * its connection, so a killed CLI frees the job at once; owner and heartbeat_at (refreshed every second)
 * say who had it and when it was last seen alive.
 */
export type MoveStatus = (typeof MOVE_STATUSES)[number]

export interface MoveJob {
  id: number
  shard: number
  source: string
  target: string
  phase: string
  status: MoveStatus
  owner: string | null
  heartbeatAt: string | null
  error: string | null
  freezeMs: number | null
  createdAt: string
  updatedAt: string
  finishedAt: string | null
}

export const MOVE_LOCK_CLASS = 0x6d6f7665

const COLUMNS = `id::int, shard, source, target, phase, status, owner, heartbeat_at AS "heartbeatAt", error,
  freeze_ms AS "freezeMs", created_at AS "createdAt", updated_at AS "updatedAt", finished_at AS "finishedAt"`

type Row = Omit<MoveJob, 'heartbeatAt' | 'createdAt' | 'updatedAt' | 'finishedAt'> & {
  heartbeatAt: Date | null
  createdAt: Date
  updatedAt: Date
  finishedAt: Date | null
}

function toJob(r: Row): MoveJob {
  const iso = (d: Date | null) => (d ? d.toISOString() : null)
  return {...r, heartbeatAt: iso(r.heartbeatAt), createdAt: r.createdAt.toISOString(), updatedAt: r.updatedAt.toISOString(), finishedAt: iso(r.finishedAt)}
}

export async function listJobs(catalog: pg.Pool | pg.ClientBase, opts: {liveOnly?: boolean; shards?: number[]} = {}): Promise<MoveJob[]> {
  const where: string[] = []
  const values: unknown[] = []
  if (opts.liveOnly) where.push(`status IN (${LIVE_MOVE_STATUSES.map((s) => `'${s}'`).join(', ')})`)
  if (opts.shards) {
    values.push(opts.shards)
    where.push(`shard = ANY($${values.length}::int[])`)
  }
  try {
    const r = await catalog.query<Row>(`SELECT ${COLUMNS} FROM shard_moves ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id`, values)
    return r.rows.map(toJob)
  } catch (err) {
    // A catalog no move has touched yet (read-only commands do not create the table).
    if ((err as {code?: string}).code === '42P01') return []
    throw err
  }
}

export async function liveJob(catalog: pg.Pool | pg.ClientBase, shard: number): Promise<MoveJob | undefined> {
  return (await listJobs(catalog, {liveOnly: true, shards: [shard]}))[0]
}

export async function createJob(catalog: pg.Pool | pg.ClientBase, shard: number, source: string, target: string, owner: string): Promise<MoveJob> {
  const r = await catalog.query<Row>(
    `INSERT INTO shard_moves (shard, source, target, phase, status, owner, heartbeat_at)
     VALUES ($1, $2, $3, 'preflight', 'running', $4, now()) RETURNING ${COLUMNS}`,
    [shard, source, target, owner],
  )
  return toJob(r.rows[0]!)
}

export interface JobUpdate {
  phase?: string
  status?: MoveStatus
  error?: string | null
  freezeMs?: number
  owner?: string
}

export async function updateJob(catalog: pg.Pool | pg.ClientBase, id: number, u: JobUpdate): Promise<MoveJob> {
  const done = u.status === 'completed' || u.status === 'reverted'
  const r = await catalog.query<Row>(
    `UPDATE shard_moves SET phase = coalesce($2, phase), status = coalesce($3, status),
       error = CASE WHEN $4::boolean THEN $5 ELSE error END, freeze_ms = coalesce($6, freeze_ms), owner = coalesce($7, owner),
       heartbeat_at = now(), updated_at = now(), finished_at = CASE WHEN $8::boolean THEN now() END
     WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, u.phase ?? null, u.status ?? null, u.error !== undefined, u.error ?? null, u.freezeMs ?? null, u.owner ?? null, done],
  )
  return toJob(r.rows[0]!)
}

/** Removes a job that never got past its preflight (a failed preflight changed nothing, so it leaves no job). */
export async function deleteJob(catalog: pg.Pool | pg.ClientBase, id: number): Promise<void> {
  await catalog.query("DELETE FROM shard_moves WHERE id = $1 AND phase = 'preflight'", [id])
}

/** This process, for the owner column: host:pid. */
export function ownerName(): string {
  return `${hostname()}:${process.pid}`
}

export interface ShardClaim {
  /** The catalog session holding the lock (also used for the job's catalog writes). */
  client: pg.PoolClient
  release(): Promise<void>
}

/**
 * Takes the shard's move lock on a catalog session of its own and starts the heartbeat of `jobId` (once
 * known, via setJob). Throws UserError exit 3 when another process holds it. It migrates nothing: commands
 * that write call ensureCatalog first.
 */
export async function claimShard(catalog: pg.Pool, shard: number): Promise<ShardClaim & {setJob(id: number): void}> {
  const client = await catalog.connect()
  const got = await client.query<{ok: boolean}>('SELECT pg_try_advisory_lock($1, $2) AS ok', [MOVE_LOCK_CLASS, shard])
  if (!got.rows[0]?.ok) {
    const job = await liveJob(client, shard).catch(() => undefined)
    client.release()
    throw new UserError(
      `Another process is working on shard ${shard}${job ? ` (move job ${job.id}, ${job.phase}, owner ${job.owner ?? 'unknown'})` : ''}.`,
      {fix: 'Wait for it to finish (`feedops shards moves` shows it), or stop it; then run this again.', exitCode: ExitCode.nothingDone},
    )
  }
  let jobId: number | undefined
  const beat = setInterval(() => {
    if (jobId !== undefined) void catalog.query('UPDATE shard_moves SET heartbeat_at = now() WHERE id = $1', [jobId]).catch(() => undefined)
  }, 1000)
  beat.unref()
  let released = false
  return {
    client,
    setJob: (id) => (jobId = id),
    release: async () => {
      if (released) return
      released = true
      clearInterval(beat)
      await client.query('SELECT pg_advisory_unlock($1, $2)', [MOVE_LOCK_CLASS, shard]).catch(() => undefined)
      client.release()
    },
  }
}

/** True when some session holds the shard's move lock (a job is being worked on right now). */
export async function isShardClaimed(catalog: pg.Pool | pg.ClientBase, shard: number): Promise<boolean> {
  const r = await catalog.query(
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2 AND granted",
    [MOVE_LOCK_CLASS, shard],
  )
  return (r.rowCount ?? 0) > 0
}

/**
 * Jobs marked running whose process is gone (killed, or it lost the catalog before it could say how it
 * ended): each is marked failed, under the shard's lock, so a job never shows as running with a dead
 * owner. A job whose lock is held is being worked on and left alone. Returns the jobs marked.
 */
export async function failOrphanedJobs(catalog: pg.Pool): Promise<MoveJob[]> {
  const running = (await listJobs(catalog, {liveOnly: true})).filter((j) => j.status === 'running')
  const marked: MoveJob[] = []
  for (const job of running) {
    if (await isShardClaimed(catalog, job.shard)) continue
    let claim: Awaited<ReturnType<typeof claimShard>>
    try {
      claim = await claimShard(catalog, job.shard)
    } catch {
      continue // taken meanwhile: being worked on
    }
    try {
      const r = await claim.client.query<Row>(
        `UPDATE shard_moves SET status = 'failed', error = $2, updated_at = now() WHERE id = $1 AND status = 'running' RETURNING ${COLUMNS}`,
        [job.id, `interrupted: its process (${job.owner ?? 'unknown'}) is gone; run \`move\` again to resume`],
      )
      if (r.rows[0]) marked.push(toJob(r.rows[0]))
    } finally {
      await claim.release()
    }
  }
  return marked
}
