import type pg from 'pg'

import {ExitCode, UserError} from '../errors.js'
import {CATALOG_DDL_LOCK, LOCK_CLASS} from './lock-keys.js'

/**
 * The catalog database: which physical server holds each logical shard, in what state, and a map
 * version that grows on every change. Changes go through compare-and-swap on the version
 * (updateShards), so two operators or movers can never both apply a change based on the same map.
 */
export type ShardState = 'active' | 'frozen' | 'moving'
export const SHARD_STATES: readonly ShardState[] = ['active', 'frozen', 'moving']

export interface ShardMapEntry {
  shard: number
  server: string
  state: ShardState
  /** Only while frozen: milliseconds left on the freeze's lease (it lapses by itself, see freezeShard). */
  frozenMs?: number
}

export interface ShardMap {
  version: number
  /** Logical shard count the catalog was created for (0 before `shards init`). */
  logical: number
  shards: ShardMapEntry[]
}

export interface ShardChange {
  shard: number
  server?: string
  state?: ShardState
}

/**
 * Another change to the map won the compare-and-swap; nothing was applied. A UserError (exit 3), so a command
 * that meets it tells the user what happened and what to do rather than print a stack.
 */
export class MapVersionConflict extends UserError {
  override readonly name: string = 'MapVersionConflict'
  constructor(
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`The shard map changed while this command ran (version ${expected} became ${actual}), so nothing was applied.`, {
      fix: 'Check the new map with `feedops shards map`, then run the command again.',
      exitCode: ExitCode.nothingDone,
    })
  }
}

/**
 * Shard moves (src/shards/move): one row per move, its phase and who runs it. At most one live job per
 * shard (running, failed = resumable, flipped = waiting for complete or revert).
 */
export const MOVE_STATUSES = ['running', 'failed', 'flipped', 'completed', 'reverted'] as const
export const LIVE_MOVE_STATUSES = ['running', 'failed', 'flipped'] as const
const MOVES_DDL = `
CREATE TABLE IF NOT EXISTS shard_moves (
  id bigserial PRIMARY KEY,
  shard int NOT NULL,
  source text NOT NULL,
  target text NOT NULL,
  phase text NOT NULL,
  status text NOT NULL CHECK (status IN (${MOVE_STATUSES.map((x) => `'${x}'`).join(', ')})),
  owner text,
  heartbeat_at timestamptz,
  error text,
  freeze_ms double precision,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS shard_moves_one_live ON shard_moves (shard) WHERE status IN (${LIVE_MOVE_STATUSES.map((x) => `'${x}'`).join(', ')});
`

const BASE_DDL = `
CREATE TABLE IF NOT EXISTS catalog_info (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  logical int NOT NULL CHECK (logical BETWEEN 1 AND 8192),
  epoch text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS map_version (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  version bigint NOT NULL
);
INSERT INTO map_version (one, version) VALUES (true, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS shard_map (
  shard int PRIMARY KEY CHECK (shard BETWEEN 0 AND 8191),
  server text NOT NULL,
  state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'frozen', 'moving')),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- shards init's plan and progress: a row per logical shard, created_at set once its schema exists.
CREATE TABLE IF NOT EXISTS shard_init (
  shard int PRIMARY KEY CHECK (shard BETWEEN 0 AND 8191),
  server text NOT NULL,
  created_at timestamptz
);
CREATE SEQUENCE IF NOT EXISTS user_id_seq AS bigint START 1;
-- A shard frozen for a cutover is frozen only until then (a lease): readers treat it as active after.
ALTER TABLE shard_map ADD COLUMN IF NOT EXISTS frozen_until timestamptz;
${MOVES_DDL}
`

/** SQLSTATE of a flip refused at its commit because the freeze's lease had run out (see FLIP_LEASE_DDL). */
export const FLIP_LEASE_SQLSTATE = 'FO002'

/**
 * The freeze's lease, enforced by the catalog's clock at the flip's commit point: a deferred constraint
 * trigger runs as the transaction commits and refuses a change of a frozen shard's server once
 * clock_timestamp() has reached its frozen_until (a flip that waited on a lock, or whose client stalled,
 * must not commit late: by then the fence on the old copy may have lapsed and let a write in).
 */
const FLIP_LEASE_DDL = `
CREATE OR REPLACE FUNCTION shard_flip_lease_check() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF OLD.state = 'frozen' AND NEW.server IS DISTINCT FROM OLD.server AND OLD.frozen_until IS NOT NULL
     AND clock_timestamp() >= OLD.frozen_until THEN
    RAISE EXCEPTION 'the freeze of shard % ran out at % before its flip committed', OLD.shard, OLD.frozen_until
      USING ERRCODE = '${FLIP_LEASE_SQLSTATE}';
  END IF;
  RETURN NULL;
END
$fn$;
DROP TRIGGER IF EXISTS shard_flip_lease ON shard_map;
CREATE CONSTRAINT TRIGGER shard_flip_lease AFTER UPDATE ON shard_map DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION shard_flip_lease_check();
`

/**
 * The catalog's schema as numbered migrations; catalog_schema holds how many are applied. Each runs once,
 * in order, from a command that writes (init, move, complete, revert, doctor); read-only commands never
 * run one. The first is idempotent, so a catalog made before the numbering takes it too.
 */
export const CATALOG_MIGRATIONS: readonly string[] = [BASE_DDL, FLIP_LEASE_DDL]

/** The whole catalog DDL, in order. */
export const CATALOG_DDL = CATALOG_MIGRATIONS.join('\n')

/** How long a migration waits for a table lock before it gives up (it must never stall the app behind it). */
const MIGRATION_LOCK_TIMEOUT_MS = 2000

/** How many migrations a catalog has (0: none, or a catalog made before the numbering). */
export async function catalogSchemaVersion(client: pg.ClientBase | pg.Pool): Promise<number> {
  try {
    const r = await client.query<{version: number}>('SELECT version FROM catalog_schema')
    return r.rows[0]?.version ?? 0
  } catch (err) {
    if ((err as {code?: string}).code === '42P01') return 0
    throw err
  }
}

/**
 * Brings the catalog's tables to the current migration (safe to run concurrently: serialized by an
 * advisory lock). A current catalog costs one SELECT and takes no lock. A migration waits at most
 * MIGRATION_LOCK_TIMEOUT_MS for a table lock (held by a long reader of the map, say), then fails with a
 * UserError, rather than queue every reader of that table behind it.
 */
export async function ensureCatalog(client: pg.ClientBase): Promise<void> {
  if ((await catalogSchemaVersion(client)) >= CATALOG_MIGRATIONS.length) return
  await client.query('BEGIN')
  try {
    await client.query(`SET LOCAL lock_timeout = ${MIGRATION_LOCK_TIMEOUT_MS}`)
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, CATALOG_DDL_LOCK])
    await client.query('CREATE TABLE IF NOT EXISTS catalog_schema (one boolean PRIMARY KEY DEFAULT true CHECK (one), version int NOT NULL)')
    const at = await catalogSchemaVersion(client)
    for (let i = at; i < CATALOG_MIGRATIONS.length; i++) await client.query(CATALOG_MIGRATIONS[i]!)
    await client.query(
      `INSERT INTO catalog_schema (one, version) VALUES (true, $1)
       ON CONFLICT (one) DO UPDATE SET version = greatest(catalog_schema.version, EXCLUDED.version)`,
      [CATALOG_MIGRATIONS.length],
    )
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined)
    if ((err as {code?: string}).code === '55P03') {
      throw new UserError(`The catalog needs a migration, which waited ${MIGRATION_LOCK_TIMEOUT_MS} ms for a table lock another session holds.`, {
        fix: 'Find the long transaction on the catalog (pg_stat_activity, state "idle in transaction"), end it, then run the command again.',
        exitCode: ExitCode.nothingDone,
        cause: err,
      })
    }
    throw err
  }
}

export async function readMapVersion(client: pg.ClientBase | pg.Pool): Promise<number> {
  const r = await client.query<{version: string}>('SELECT version FROM map_version')
  return Number(r.rows[0]?.version ?? 0)
}

const UNDEFINED_TABLE = '42P01'

/** What to do while there is no catalog or no shards yet. */
export const INIT_FIX = 'Run `feedops shards init` first (it creates the catalog and the shard schemas).'

/** The whole map in one consistent snapshot. */
export async function readShardMap(client: pg.ClientBase | pg.Pool): Promise<ShardMap> {
  // A freeze whose lease ran out reads as active (the cutover that set it died or overran).
  const r = await client.query<{version: string; logical: number | null; shards: ShardMapEntry[] | null}>(`
    SELECT (SELECT version FROM map_version) AS version,
           (SELECT logical FROM catalog_info) AS logical,
           (SELECT json_agg(CASE
                WHEN state <> 'frozen' OR frozen_until IS NULL THEN json_build_object('shard', shard, 'server', server, 'state', state)
                WHEN frozen_until > now() THEN json_build_object('shard', shard, 'server', server, 'state', state,
                  'frozenMs', round(extract(epoch FROM frozen_until - now()) * 1000))
                ELSE json_build_object('shard', shard, 'server', server, 'state', 'active') END ORDER BY shard)
            FROM shard_map) AS shards`)
    .catch((err: unknown) => {
      if ((err as {code?: string}).code === UNDEFINED_TABLE) {
        throw new UserError('The shard catalog does not exist yet.', {fix: INIT_FIX, cause: err})
      }
      throw err
    })
  const row = r.rows[0]!
  return {version: Number(row.version ?? 0), logical: row.logical ?? 0, shards: row.shards ?? []}
}

/**
 * Physical server → the logical shards it holds, ascending, for every server that holds any (servers in the
 * order their first shard appears). The one grouping of the map that the app's map cache, the feed read and
 * the photo-map rebuild and seeder all use.
 */
export function shardsByServer(map: Pick<ShardMap, 'shards'>): Map<string, number[]> {
  const out = new Map<string, number[]>()
  for (const s of [...map.shards].sort((a, b) => a.shard - b.shard)) {
    const list = out.get(s.server)
    if (list) list.push(s.shard)
    else out.set(s.server, [s.shard])
  }
  return out
}

/**
 * Applies changes if the map is still at expectedVersion, and bumps the version, in one transaction.
 * Throws MapVersionConflict when the version moved (someone else changed the map first). Concurrent
 * callers with the same expected version serialize on the version row: one wins, the others conflict.
 * Runs its own transaction: do not call inside one.
 */
export async function updateShards(client: pg.ClientBase, expectedVersion: number, changes: ShardChange[]): Promise<ShardMap> {
  for (const c of changes) {
    if (c.state !== undefined && !SHARD_STATES.includes(c.state)) throw new RangeError(`Unknown shard state "${String(c.state)}".`)
  }
  await client.query('BEGIN')
  try {
    const bumped = await client.query('UPDATE map_version SET version = version + 1 WHERE version = $1 RETURNING version', [
      expectedVersion,
    ])
    if (bumped.rowCount !== 1) {
      const actual = await readMapVersion(client)
      throw new MapVersionConflict(expectedVersion, actual)
    }
    for (const c of changes) {
      const r = await client.query(
        `UPDATE shard_map SET server = coalesce($2, server), state = coalesce($3, state), updated_at = now(),
           frozen_until = CASE WHEN $3 IS NULL THEN frozen_until END WHERE shard = $1`,
        [c.shard, c.server ?? null, c.state ?? null],
      )
      if (r.rowCount !== 1) throw new RangeError(`Shard ${c.shard} is not in the shard map.`)
    }
    const map = await readShardMap(client)
    await client.query('COMMIT')
    return map
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw err
  }
}

/** A new user id from the catalog's sequence (users live in the shard their id hashes to). */
export async function nextUserId(client: pg.ClientBase | pg.Pool): Promise<bigint> {
  const r = await client.query<{id: string}>("SELECT nextval('user_id_seq')::text AS id")
  return BigInt(r.rows[0]!.id)
}

/** A cutover's freeze ran past its lease before the map was flipped: the shard is active on its old server again. */
export class FreezeLapsed extends Error {
  override readonly name = 'FreezeLapsed'
  constructor(readonly shard: number) {
    super(`The freeze of shard ${shard} ran past its lease before the map was flipped; the shard stayed where it was.`)
  }
}

/**
 * One shard's row changed and the version bumped, by compare-and-swap, in a single statement (one round
 * trip, all or nothing): the row is locked if it matches `where`; the version is bumped only if it is still
 * expectedVersion and the row matched; the row is changed only if the version was bumped. $1 is the shard,
 * $2 the expected version; `params` are $3…. Returns the new version, or null when the row did not match.
 * Throws MapVersionConflict when the version moved.
 */
async function casShardRow(client: pg.ClientBase, expectedVersion: number, shard: number, where: string, set: string, params: unknown[]): Promise<number | null> {
  const r = await client.query<{version: string | null; matched: boolean; current: string}>(
    `WITH s AS (SELECT shard FROM shard_map WHERE shard = $1 AND (${where}) FOR UPDATE),
          v AS (UPDATE map_version SET version = version + 1 WHERE version = $2 AND EXISTS (SELECT 1 FROM s) RETURNING version),
          u AS (UPDATE shard_map SET ${set}, updated_at = now() FROM v WHERE shard_map.shard = $1 RETURNING 1)
     SELECT (SELECT version FROM v)::text AS version, EXISTS (SELECT 1 FROM s) AS matched, (SELECT version FROM map_version)::text AS current`,
    [shard, expectedVersion, ...params],
  )
  const row = r.rows[0]!
  if (!row.matched) return null
  if (row.version === null) throw new MapVersionConflict(expectedVersion, Number(row.current))
  return Number(row.version)
}

/**
 * Marks an active shard on `server` frozen for leaseMs (CAS on the version). The freeze lapses by
 * itself: once frozen_until passes, readShardMap reports the shard active again and flipShard refuses.
 * Returns the new version. Throws RangeError when the shard is not active on that server.
 */
export async function freezeShard(client: pg.ClientBase, expectedVersion: number, shard: number, server: string, leaseMs: number): Promise<number> {
  const version = await casShardRow(
    client,
    expectedVersion,
    shard,
    "server = $3 AND (state = 'active' OR (state = 'frozen' AND frozen_until <= now()))",
    "state = 'frozen', frozen_until = now() + $4 * interval '1 millisecond'",
    [server, leaseMs],
  )
  if (version === null) throw new RangeError(`Shard ${shard} is not active on ${server}.`)
  return version
}

/**
 * The cutover's switch: points a frozen shard at `server` and unfreezes it (CAS on the version), only
 * while the freeze's lease has at least marginMs left, by the catalog's clock when the row is locked and
 * again when the flip commits. Throws FreezeLapsed otherwise (nothing changed).
 */
export async function flipShard(client: pg.ClientBase, expectedVersion: number, shard: number, server: string, marginMs = 0): Promise<number> {
  // clock_timestamp(), not now() (the statement's start): the statement may have waited on a row lock. The
  // commit is checked again by the catalog itself (FLIP_LEASE_DDL).
  const version = await casShardRow(
    client,
    expectedVersion,
    shard,
    "state = 'frozen' AND frozen_until > clock_timestamp() + $4 * interval '1 millisecond'",
    "server = $3, state = 'active', frozen_until = NULL",
    [server, marginMs],
  ).catch((err: unknown) => {
    throw (err as {code?: string}).code === FLIP_LEASE_SQLSTATE ? new FreezeLapsed(shard) : err
  })
  if (version === null) throw new FreezeLapsed(shard)
  return version
}

/** Ends a freeze early (a cutover that gave up); no-op returning null when the shard is not frozen. */
export async function thawShard(client: pg.ClientBase, expectedVersion: number, shard: number): Promise<number | null> {
  return casShardRow(client, expectedVersion, shard, "state = 'frozen'", "state = 'active', frozen_until = NULL", [])
}

/**
 * Runs a CAS step against the current version (or first against `known`, a version just read or written),
 * re-reading it and trying again when another change won.
 */
export async function withCurrentVersion<T>(client: pg.ClientBase, step: (version: number) => Promise<T>, known?: number): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await step(i === 1 && known !== undefined ? known : await readMapVersion(client))
    } catch (err) {
      if (!(err instanceof MapVersionConflict) || i >= 20) throw err
    }
  }
}
