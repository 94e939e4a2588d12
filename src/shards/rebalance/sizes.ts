import {errorText, UserError} from '../../errors.js'
import type {ShardMap} from '../catalog.js'
import {schemaName, shardOfSchema} from '../placement.js'
import type {ServerPools} from '../pools.js'
import type {ShardSize} from './plan.js'

/**
 * Rows (the planner's estimate, pg_class.reltuples) and bytes (pg_total_relation_size) of every logical
 * shard, read from the server the map puts it on: one query per server, all servers at once. A server that
 * does not answer is a UserError naming it (a plan made without its sizes would be wrong).
 */
export async function readShardSizes(pools: ServerPools, map: ShardMap, configured: readonly string[]): Promise<ShardSize[]> {
  const byServer = new Map<string, number[]>()
  for (const s of map.shards) byServer.set(s.server, [...(byServer.get(s.server) ?? []), s.shard])
  const failed: string[] = []
  const sizes = new Map<number, {rows: number; bytes: number}>()
  await Promise.all(
    [...byServer].map(async ([server, shards]) => {
      if (!configured.includes(server)) return // not configured: shown with no size
      try {
        const r = await pools.pool(server).query<{schema: string; rows: string; bytes: string}>(
          `SELECT n.nspname AS schema, coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint AS rows,
                  coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS bytes
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
            GROUP BY n.nspname`,
          [shards.map(schemaName)],
        )
        for (const row of r.rows) {
          const shard = shardOfSchema(row.schema)
          if (shard !== null) sizes.set(shard, {rows: Number(row.rows), bytes: Number(row.bytes)})
        }
      } catch (err) {
        failed.push(`${server}: ${errorText(err)}`)
      }
    }),
  )
  if (failed.length > 0) {
    throw new UserError(`Cannot read the shard sizes from ${failed.join('; ')}. Nothing was changed.`, {
      fix: 'Start the server(s) or fix env.shards in the config, then plan again.',
    })
  }
  return map.shards.map((s) => ({shard: s.shard, server: s.server, ...(sizes.get(s.shard) ?? {rows: 0, bytes: 0})}))
}
