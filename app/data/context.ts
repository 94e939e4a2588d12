import {createHash} from 'node:crypto'

import type {Redis} from 'ioredis'
import type pg from 'pg'

import type {ServerPools} from '../../src/shards/pools.js'
import type {PhotoOwnerMap} from '../../src/shards/photo-map/map.js'
import {schemaName} from '../../src/shards/placement.js'
import {quoteIdent} from '../../src/shards/ddl.js'
import type {Logger} from '../logger.js'
import type {ShardMapCache} from './map-cache.js'
import type {UserCache} from './user-cache.js'

/** What the data-access functions share: connections, caches and the few settings they need. */
export interface DataContext {
  pools: ServerPools
  maps: ShardMapCache
  redis: Redis
  photoMap: PhotoOwnerMap
  users: UserCache
  log: Logger
  freezeWaitMs: number
  cdnBase: string
  feedStrategy: 'per-server' | 'per-shard'
  /** Named (prepared) statements for the feed's per-server queries; off behind PgBouncer < 1.21. */
  preparedStatements: boolean
}

/** `"s0042"` — a logical shard's schema, quoted for SQL. */
export const schema = (shard: number): string => quoteIdent(schemaName(shard))

export async function query<R extends pg.QueryResultRow>(ctx: DataContext, server: string, text: string, values: unknown[]): Promise<R[]> {
  const r = await ctx.pools.pool(server).query<R>(text, values)
  return r.rows
}

/**
 * A query whose text is the same for many requests, as a named statement when ctx.preparedStatements:
 * each pooled connection parses and plans it once (Postgres switches to a generic plan after five runs)
 * instead of on every request. The name is derived from the text, so a different text is a different
 * statement (pg refuses one name for two texts).
 */
export async function preparedQuery<R extends pg.QueryResultRow>(ctx: DataContext, server: string, text: string, values: unknown[]): Promise<R[]> {
  if (!ctx.preparedStatements) return query<R>(ctx, server, text, values)
  const name = `q${createHash('sha1').update(text).digest('hex').slice(0, 20)}`
  const r = await ctx.pools.pool(server).query<R>({name, text, values})
  return r.rows
}

/** Postgres error code of a failed query, if any (23505 unique violation, 23503 foreign key). */
export function pgCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

/** Ids in SQL parameters go as decimal text cast to bigint; pg returns bigint columns as text. */
export const idText = (id: bigint): string => id.toString()
export const idArray = (ids: bigint[]): string[] => ids.map(idText)
