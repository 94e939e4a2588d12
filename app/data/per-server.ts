import type pg from 'pg'

import {idArray, query, schema, type DataContext} from './context.js'

/**
 * The per-server shape of every multi-shard read: ids grouped by logical shard, the shards by the physical
 * server that holds them now, and one statement per server that UNION ALLs one SELECT per shard.
 */

/** Shard → ids, per physical server (servers and shards in first-seen order). */
export type IdsByServer = Map<string, Map<number, bigint[]>>

export function idsByServer(ctx: DataContext, ids: Iterable<bigint>, shardOf: (id: bigint) => number): IdsByServer {
  const out: IdsByServer = new Map()
  for (const id of ids) {
    const shard = shardOf(id)
    const server = ctx.maps.serverOf(shard)
    let shards = out.get(server)
    if (!shards) out.set(server, (shards = new Map()))
    const list = shards.get(shard)
    if (list) list.push(id)
    else shards.set(shard, [id])
  }
  return out
}

/**
 * `select(schema, idsParam)` for each shard, joined by UNION ALL. Each shard's ids are one bigint[] parameter,
 * numbered after the `values` given (which the statement may use as $1…).
 */
export function unionAllOverShards(
  shards: Iterable<readonly [number, bigint[]]>,
  select: (schema: string, idsParam: string) => string,
  values: unknown[] = [],
): {text: string; values: unknown[]} {
  const out = [...values]
  const parts: string[] = []
  for (const [shard, ids] of shards) {
    out.push(idArray(ids))
    parts.push(select(schema(shard), `$${out.length}::bigint[]`))
  }
  return {text: parts.join('\nUNION ALL\n'), values: out}
}

/** One statement per physical server over the shards holding `ids` (run in parallel); the rows of all of them. */
export async function queryByServer<R extends pg.QueryResultRow>(
  ctx: DataContext,
  tag: string,
  ids: Iterable<bigint>,
  shardOf: (id: bigint) => number,
  select: (schema: string, idsParam: string) => string,
): Promise<R[]> {
  const perServer = await Promise.all(
    [...idsByServer(ctx, ids, shardOf)].map(([server, shards]) => {
      const {text, values} = unionAllOverShards(shards, select)
      return query<R>(ctx, server, `/* app:${tag} */ ${text}`, values)
    }),
  )
  return perServer.flat()
}
