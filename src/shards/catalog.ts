import type pg from 'pg'

import {ExitCode, UserError} from '../errors.js'

/**
 * The catalog database: which physical server holds each logical shard, in what state, and a map
 * version that grows on every change. Changes go through compare-and-swap on the version
 * (updateShards), so two operators or movers can never both apply a change based on the same map.
 */
export type ShardState = 'active' | 'frozen' | 'moving'
export const SHARD_STATES: readonly ShardState[] = ['active', 'frozen', 'moving']

export interface ShardMap {
  version: number
  /** Logical shard count the catalog was created for (0 before `shards init`). */
  logical: number
  shards: {shard: number; server: string; state: ShardState}[]
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

export const CATALOG_DDL = `
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
`

/** Creates the catalog's tables if missing (safe to run concurrently: serialized by an advisory lock). */
export async function ensureCatalog(client: pg.ClientBase): Promise<void> {
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock(1717921124, -1)')
    await client.query(CATALOG_DDL)
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined)
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
  const r = await client.query<{version: string; logical: number | null; shards: {shard: number; server: string; state: ShardState}[] | null}>(`
    SELECT (SELECT version FROM map_version) AS version,
           (SELECT logical FROM catalog_info) AS logical,
           (SELECT json_agg(json_build_object('shard', shard, 'server', server, 'state', state) ORDER BY shard) FROM shard_map) AS shards`)
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
        'UPDATE shard_map SET server = coalesce($2, server), state = coalesce($3, state), updated_at = now() WHERE shard = $1',
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
