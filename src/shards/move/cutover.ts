import type pg from 'pg'

import {FreezeLapsed, flipShard, freezeShard, readShardMap, thawShard, withCurrentVersion} from '../catalog.js'
import {MOVE_SCHEMA, q, quoteLiteral} from './names.js'
import {pauseAt} from './pause.js'
import {waitForMarker} from './replication.js'
import {liftFence, markerSql, setFenceSql} from './server-objects.js'

/**
 * The switch of a shard from the server serving it (`from`) to a caught-up replica (`to`):
 *   1. freeze the shard in the map with a lease (the app holds its writes), announce;
 *   2. fence `from` in one transaction: lock the shard's tables IN SHARE MODE (waits for in-flight writes),
 *      write a fence row that expires with the lease, write a marker token, read the sequences; commit.
 *      From here no write can land on `from`, whoever sends it;
 *   3. wait until `to` has applied the token (so everything committed on `from` before the fence);
 *   4. set `to`'s sequences past those values, run beforeFlip (the reverse slot);
 *   5. check the fence has not lapsed (if it had, a write could have landed after the token);
 *   6. flip the map to `to` and unfreeze in one CAS, provided the freeze's lease has not run out by the
 *      catalog's clock when the flip commits (enforced by the catalog itself); announce.
 * A failure before the flip lifts the fence and thaws the shard, leaving the shard where it was. Both lapse
 * by themselves with the lease if this process dies, so the shard takes writes again within the lease
 * whatever happens: the fence is never extended past it. After the flip the caller makes the fence
 * permanent at once (a process that dies in between leaves that to `shards moves`, `doctor` or `move`).
 */
export interface CutoverSide {
  name: string
  pool: pg.Pool
}

export interface CutoverPlan {
  catalog: pg.ClientBase
  shard: number
  schema: string
  tables: readonly string[]
  jobId: number
  from: CutoverSide
  to: CutoverSide
  leaseMs: number
  lockTimeoutMs: number
  announce(version: number): Promise<void>
  beforeFlip?(): Promise<void>
}

export interface CutoverResult {
  /** Freeze to flip: how long the shard's writes were held. */
  freezeMs: number
  /** Of that, waiting for `to` to apply the last changes. */
  waitMs: number
  version: number
}

export async function cutover(plan: CutoverPlan): Promise<CutoverResult> {
  const {catalog, shard, schema, from, to} = plan
  const frozenVersion = await withCurrentVersion(catalog, (v) => freezeShard(catalog, v, shard, from.name, plan.leaseMs))
  const frozenAt = performance.now()
  // Not awaited: announcing only speeds up what the fence enforces anyway.
  void plan.announce(frozenVersion)
  let waitMs = 0
  try {
    const token = `cutover-${plan.jobId}-${Date.now()}`
    const sequences = await fence(from.pool, plan, token)
    await pauseAt('frozen')
    const waitStart = performance.now()
    await waitForMarker(to.pool, schema, token, Math.max(1, plan.leaseMs - (performance.now() - frozenAt)))
    waitMs = performance.now() - waitStart
    // Independent of each other; all must be done before the flip. (The fence was set after the freeze
    // with the same lease, so it outlives the freeze, which the flip's commit is held to.)
    const [live] = await Promise.all([
      from.pool.query(`SELECT 1 FROM ${MOVE_SCHEMA}.fence WHERE schema_name = $1 AND job = $2 AND expires_at > clock_timestamp()`, [schema, plan.jobId]),
      raiseSequences(to.pool, schema, sequences),
      plan.beforeFlip?.(),
    ])
    if (live.rowCount !== 1) throw new FreezeLapsed(shard)
    await pauseAt('before-flip')
    const version = await withCurrentVersion(catalog, (v) => flipShard(catalog, v, shard, to.name), frozenVersion)
    const freezeMs = performance.now() - frozenAt
    await pauseAt('flipped')
    await plan.announce(version)
    return {freezeMs, waitMs, version}
  } catch (err) {
    await undoFreeze(plan).catch(() => undefined)
    throw err
  }
}

/** After a failed cutover: unless the flip did commit, lift the fence and thaw the shard. */
async function undoFreeze(plan: CutoverPlan): Promise<void> {
  const map = await readShardMap(plan.catalog)
  if (map.shards.find((s) => s.shard === plan.shard)?.server === plan.to.name) return // flipped after all
  // If `from` cannot be reached the fence lapses by itself; the thaw must not wait for it.
  await liftFence(plan.from.pool, plan.schema).catch(() => undefined)
  const version = await withCurrentVersion(plan.catalog, (v) => thawShard(plan.catalog, v, plan.shard))
  if (version !== null) await plan.announce(version)
}

interface SequenceValue {
  sequencename: string
  last_value: string
}

/**
 * The fence transaction; returns the schema's sequence values as they are once it holds the tables
 * (final: every write that could advance them now waits or is refused).
 */
async function fence(pool: pg.Pool, plan: CutoverPlan, token: string): Promise<SequenceValue[]> {
  const c = await pool.connect()
  try {
    // One round trip. The commit is flushed even where synchronous_commit is off: WAL senders send only flushed WAL.
    const results = (await c.query(`BEGIN;
      SET LOCAL lock_timeout = ${Math.round(plan.lockTimeoutMs)}; SET LOCAL synchronous_commit = on;
      LOCK TABLE ${plan.tables.map((t) => `${q(plan.schema)}.${q(t)}`).join(', ')} IN SHARE MODE;
      ${setFenceSql(plan.schema, plan.jobId, plan.leaseMs)};
      ${markerSql(plan.schema, token)};
      SELECT sequencename, last_value::text FROM pg_sequences WHERE schemaname = ${quoteLiteral(plan.schema)} AND last_value IS NOT NULL;
      COMMIT`)) as unknown as pg.QueryResult<SequenceValue>[]
    return results.find((r) => r.command === 'SELECT')!.rows
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined)
    throw err
  } finally {
    c.release()
  }
}

/** Moves each sequence of the schema on `to` up to the given value (never down). */
async function raiseSequences(to: pg.Pool, schema: string, values: readonly SequenceValue[]): Promise<void> {
  if (values.length === 0) return
  await to.query(
    values
      .map((x) => {
        const seq = `${q(schema)}.${q(x.sequencename)}`
        return `SELECT setval('${seq}', greatest(${BigInt(x.last_value)}, (SELECT last_value FROM ${seq})))`
      })
      .join(';\n'),
  )
}
