import type pg from 'pg'

import type {ShardsSettings} from '../config/schema.js'
import {ExitCode, UserError, errorText} from '../errors.js'
import {ensureCatalog, readMapVersion} from './catalog.js'
import {NEXT_ID_LOCK_CLASS, shardSchemaSql} from './ddl.js'
import {MAX_SHARD, epochMs} from './ids.js'
import {assignShards, schemaName} from './placement.js'
import type {ServerPools} from './pools.js'
import {assertReachable} from './reach.js'

/**
 * `shards init`: creates the catalog and one schema per logical shard on the physical servers.
 *
 * Resumable: the first run records the plan (shard → server) in the catalog's shard_init table. Each
 * batch of schemas is created on its server in one multi-statement query (one implicit transaction),
 * then, in one catalog transaction, the batch is marked created, its shard_map rows are inserted and
 * the map version bumped. A run killed at any point leaves either whole batches or nothing; the next
 * run skips what is marked and re-runs at most the one batch whose mark was lost (its DDL is
 * idempotent, so nothing is created twice). Servers are worked in parallel, one connection each.
 */

export const DEFAULT_BATCH = 64
export const MAX_BATCH = 512

export interface InitOptions {
  /** Logical shard count (default env.shards.logical). */
  logical?: number
  /** Schemas per transaction (default 64). */
  batch?: number
  /** Stops each server after its current batch (Ctrl-C); what was made stays recorded, a rerun resumes. */
  signal?: AbortSignal
}

export interface ServerProgress {
  server: string
  /** Logical shards planned on this server. */
  total: number
  /** Of those, how many exist now. */
  done: number
}

export interface ServerInitResult {
  server: string
  shards: number
  /** Schemas created by this run. */
  created: number
  /** Schemas that existed before this run (done earlier or by a killed run). */
  existing: number
  error?: string
}

export interface InitResult {
  logical: number
  epoch: string
  batch: number
  version: number
  created: number
  existing: number
  complete: boolean
  seconds: number
  servers: ServerInitResult[]
}

export interface InitPlan {
  logical: number
  epoch: string
  batch: number
  servers: {name: string; total: number; pending: number[]}[]
  /** Creates this server's pending schemas; never throws (errors are in the result). */
  runServer(name: string, onProgress?: (p: ServerProgress) => void): Promise<ServerInitResult>
  /** Releases the init lock and reports. */
  finish(results: ServerInitResult[]): Promise<InitResult>
  /** Releases the init lock without reporting (on failure). */
  abort(): Promise<void>
}

const INIT_LOCK_KEY = -2

export function validateInitOptions(settings: ShardsSettings, opts: InitOptions): {logical: number; batch: number} {
  const logical = opts.logical ?? settings.logical
  const batch = opts.batch ?? DEFAULT_BATCH
  if (!Number.isInteger(logical) || logical < 1 || logical > MAX_SHARD + 1) {
    throw new UserError(`--logical ${logical} is out of range: the id format has 13 bits of shard, so 1..8192.`, {
      fix: 'Pass --logical between 1 and 8192 (production uses 8192).',
    })
  }
  if (!Number.isInteger(batch) || batch < 1 || batch > MAX_BATCH) {
    throw new UserError(`--batch ${batch} is out of range (1..${MAX_BATCH}).`, {
      fix: `Pass --batch between 1 and ${MAX_BATCH}; every schema takes ~15 locks inside its batch's transaction.`,
    })
  }
  return {logical, batch}
}

/**
 * Checks input and servers, creates the catalog, records or re-reads the plan, and takes the init
 * lock. Throws UserError before anything is created when input is bad or a server is unreachable.
 */
export async function planInit(pools: ServerPools, settings: ShardsSettings, opts: InitOptions = {}): Promise<InitPlan> {
  const {logical, batch} = validateInitOptions(settings, opts)
  const epoch = settings.epoch
  const epochBig = epochMs(epoch)
  await assertReachable(pools, settings)

  // A session lock on a dedicated catalog connection: held while this init runs, dropped with the
  // connection if the process dies.
  const lockClient = await pools.catalog.connect()
  let released = false
  const release = async () => {
    if (released) return
    released = true
    await lockClient.query('SELECT pg_advisory_unlock($1, $2)', [NEXT_ID_LOCK_CLASS, INIT_LOCK_KEY]).catch(() => undefined)
    lockClient.release()
  }
  try {
    const got = await lockClient.query<{ok: boolean}>('SELECT pg_try_advisory_lock($1, $2) AS ok', [NEXT_ID_LOCK_CLASS, INIT_LOCK_KEY])
    if (!got.rows[0]?.ok) {
      throw new UserError('Another `shards init` is running against this catalog.', {
        fix: 'Wait for it to finish (or kill it), then run this again.',
        exitCode: ExitCode.nothingDone,
      })
    }
    await ensureCatalog(lockClient)
    const plan = await recordPlan(lockClient, settings, logical, epoch)
    const configured = new Set(settings.servers.map((s) => s.name))
    const unknown = [...new Set(plan.map((p) => p.server))].filter((s) => !configured.has(s))
    if (unknown.length > 0) {
      throw new UserError(`The catalog plans shards on ${unknown.join(', ')}, which env.shards.servers no longer lists.`, {
        fix: 'Put those servers back in the config to finish the init.',
      })
    }
    const servers = settings.servers.map((s) => {
      const mine = plan.filter((p) => p.server === s.name)
      return {name: s.name, total: mine.length, pending: mine.filter((p) => !p.created).map((p) => p.shard)}
    })

    const runServer = async (name: string, onProgress?: (p: ServerProgress) => void): Promise<ServerInitResult> => {
      const s = servers.find((x) => x.name === name)
      if (!s) throw new RangeError(`Server ${name} is not in the plan.`)
      const result: ServerInitResult = {server: name, shards: s.total, created: 0, existing: s.total - s.pending.length}
      onProgress?.({server: name, total: s.total, done: result.existing})
      let client: pg.PoolClient | undefined
      try {
        client = await pools.pool(name).connect()
        for (let i = 0; i < s.pending.length; i += batch) {
          if (opts.signal?.aborted) {
            result.error = 'interrupted'
            break
          }
          const shards = s.pending.slice(i, i + batch)
          const created = await createBatch(client, shards, epochBig)
          await markCreated(pools.catalog, name, shards)
          result.created += created
          result.existing += shards.length - created
          onProgress?.({server: name, total: s.total, done: result.created + result.existing})
        }
      } catch (err) {
        result.error = errorText(err)
      } finally {
        client?.release()
      }
      return result
    }

    const finish = async (results: ServerInitResult[]): Promise<InitResult> => {
      try {
        const done = await lockClient.query<{n: number}>('SELECT count(*)::int AS n FROM shard_init WHERE created_at IS NOT NULL')
        const version = await readMapVersion(lockClient)
        return {
          logical,
          epoch,
          batch,
          version,
          created: results.reduce((a, r) => a + r.created, 0),
          existing: results.reduce((a, r) => a + r.existing, 0),
          complete: done.rows[0]!.n === logical,
          seconds: 0,
          servers: results,
        }
      } finally {
        await release()
      }
    }

    return {logical, epoch, batch, servers, runServer, finish, abort: release}
  } catch (err) {
    await release()
    throw err
  }
}

/** planInit, every server in parallel, finish. */
export async function initShards(
  pools: ServerPools,
  settings: ShardsSettings,
  opts: InitOptions = {},
  onProgress?: (p: ServerProgress) => void,
): Promise<InitResult> {
  const started = performance.now()
  const plan = await planInit(pools, settings, opts)
  const results = await Promise.all(plan.servers.map((s) => plan.runServer(s.name, onProgress)))
  const result = await plan.finish(results)
  return {...result, seconds: (performance.now() - started) / 1000}
}

async function recordPlan(
  client: pg.ClientBase,
  settings: ShardsSettings,
  logical: number,
  epoch: string,
): Promise<{shard: number; server: string; created: boolean}[]> {
  const info = await client.query<{logical: number; epoch: string}>('SELECT logical, epoch FROM catalog_info')
  const existing = info.rows[0]
  if (existing) {
    if (existing.logical !== logical) {
      throw new UserError(`The catalog was created for ${existing.logical} logical shards, not ${logical}.`, {
        fix: `Run again with --logical ${existing.logical} (the logical count of a catalog never changes; rows are placed by it).`,
      })
    }
    if (epochMs(existing.epoch) !== epochMs(epoch)) {
      throw new UserError(`The catalog's id epoch is ${existing.epoch}, but env.shards.epoch is ${epoch}.`, {
        fix: `Set env.shards.epoch to ${existing.epoch}; the epoch of existing ids cannot change.`,
      })
    }
  } else {
    const servers = assignShards(logical, settings.servers)
    await client.query('BEGIN')
    try {
      await client.query('INSERT INTO catalog_info (logical, epoch) VALUES ($1, $2)', [logical, epoch])
      await client.query('INSERT INTO shard_init (shard, server) SELECT * FROM unnest($1::int[], $2::text[])', [
        servers.map((_, i) => i),
        servers,
      ])
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw err
    }
  }
  const rows = await client.query<{shard: number; server: string; created: boolean}>(
    'SELECT shard, server, created_at IS NOT NULL AS created FROM shard_init ORDER BY shard',
  )
  return rows.rows
}

/** Creates a batch of schemas in one round trip and one transaction; returns how many were new. */
async function createBatch(client: pg.ClientBase, shards: number[], epoch: bigint): Promise<number> {
  const names = shards.map(schemaName)
  const before = await client.query<{n: number}>('SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ANY($1)', [names])
  await client.query(shards.map((s) => shardSchemaSql(s, epoch)).join(''))
  return shards.length - before.rows[0]!.n
}

/** In one catalog transaction: mark the batch created, add its map rows, bump the map version. */
async function markCreated(catalog: pg.Pool, server: string, shards: number[]): Promise<void> {
  await catalog.query(
    `WITH marked AS (
       UPDATE shard_init SET created_at = now() WHERE shard = ANY($1::int[]) AND created_at IS NULL RETURNING shard
     ), added AS (
       INSERT INTO shard_map (shard, server) SELECT shard, $2 FROM marked ON CONFLICT (shard) DO NOTHING RETURNING shard
     )
     UPDATE map_version SET version = version + 1 WHERE EXISTS (SELECT 1 FROM added)`,
    [shards, server],
  )
}
