import type pg from 'pg'

import type {ShardsSettings} from '../config/schema.js'
import {errorText} from '../errors.js'
import {SHARD_STATES, readShardMap, type ShardState} from './catalog.js'
import {SHARD_TABLES, quoteIdent} from './ddl.js'
import {picture, type Picture} from './picture.js'
import {schemaName} from './placement.js'
import type {ServerPools} from './pools.js'

/** What `shards map` shows: the map version and, per physical server, its shards, rows and bytes. */
export interface ServerUsage {
  server: string
  /** False when the server is in the map but not in env.shards.servers. */
  configured: boolean
  shards: number
  states: Record<ShardState, number>
  /** pg_class.reltuples estimates, or exact counts with --exact; null when the server failed. */
  rows: number | null
  /** pg_total_relation_size summed over the server's shard schemas. */
  bytes: number | null
  error?: string
}

export interface MapReport {
  version: number
  logical: number
  /** Shards in the map (equals logical once init is complete). */
  mapped: number
  exact: boolean
  servers: ServerUsage[]
  shards: {shard: number; server: string; state: ShardState}[]
}

const EXACT_CHUNK = 256

export async function shardMapReport(
  pools: ServerPools,
  settings: Pick<ShardsSettings, 'servers'>,
  opts: {exact?: boolean} = {},
): Promise<MapReport> {
  const map = await readShardMap(pools.catalog)
  const names = [...settings.servers.map((s) => s.name)]
  for (const s of map.shards) if (!names.includes(s.server)) names.push(s.server)
  const configured = new Set(settings.servers.map((s) => s.name))

  const servers = await Promise.all(
    names.map(async (server): Promise<ServerUsage> => {
      const mine = map.shards.filter((s) => s.server === server)
      const states = Object.fromEntries(SHARD_STATES.map((st) => [st, mine.filter((s) => s.state === st).length])) as Record<
        ShardState,
        number
      >
      const usage: ServerUsage = {server, configured: configured.has(server), shards: mine.length, states, rows: null, bytes: null}
      if (!usage.configured) {
        usage.error = 'not in env.shards.servers'
        return usage
      }
      if (mine.length === 0) return {...usage, rows: 0, bytes: 0}
      try {
        const schemas = mine.map((s) => schemaName(s.shard))
        const pool = pools.pool(server)
        const size = await pool.query<{rows: string; bytes: string}>(
          `SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint AS rows,
                  coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS bytes
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)`,
          [schemas],
        )
        usage.bytes = Number(size.rows[0]!.bytes)
        usage.rows = opts.exact ? await exactRows(pool, schemas) : Number(size.rows[0]!.rows)
      } catch (err) {
        usage.error = errorText(err)
      }
      return usage
    }),
  )
  return {version: map.version, logical: map.logical, mapped: map.shards.length, exact: Boolean(opts.exact), servers, shards: map.shards}
}

/** count(*) of every sharded table, a chunk of schemas per query. */
async function exactRows(pool: pg.Pool, schemas: string[]): Promise<number> {
  let total = 0
  for (let i = 0; i < schemas.length; i += EXACT_CHUNK) {
    const parts = schemas
      .slice(i, i + EXACT_CHUNK)
      .flatMap((s) => SHARD_TABLES.map((t) => `(SELECT count(*) FROM ${quoteIdent(s)}.${quoteIdent(t)})`))
    const r = await pool.query<{n: string}>(`SELECT (${parts.join(' + ')})::bigint AS n`)
    total += Number(r.rows[0]!.n)
  }
  return total
}

/** The map's picture: a bar per server for its logical shards and one for its bytes. */
export function mapPicture(report: MapReport): Picture {
  return picture(
    ['now'],
    [report.servers.map((s) => ({server: s.server, shards: s.shards, bytes: s.bytes, ...(s.error ? {note: s.error} : {})}))],
  )
}
