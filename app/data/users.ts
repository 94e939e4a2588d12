import {nextUserId} from '../../src/shards/catalog.js'
import {shardOfUser} from '../../src/shards/placement.js'
import {badRequest, conflict, notFound} from '../http/errors.js'
import {groupBy, idArray, idText, pgCode, query, schema, type DataContext} from './context.js'
import {writeToShard} from './shard-write.js'
import type {UserObject} from './user-cache.js'

/**
 * Users and the follow graph. A user's row and the users they follow live in the user's logical shard
 * (hash of the id). The follower count lives in Redis (`feedops:followers:<id>`, changed only when an edge
 * was really added or removed) because a user's followers are spread over every shard; the following count
 * is an index-only count in the user's own shard. Both ride in the Memcached user object, which is deleted
 * whenever either changes.
 */

const followersKey = (id: bigint) => `feedops:followers:${id}`

interface UserRow {
  id: string
  username: string
  name: string
  bio: string
  created_at: Date
  following: number
}

export function shardOf(ctx: DataContext, userId: bigint): number {
  return shardOfUser(userId, ctx.maps.logical)
}

export async function createUser(ctx: DataContext, input: {username: string; name: string}): Promise<UserObject> {
  const catalog = await ctx.pools.catalog.connect()
  let id: bigint
  try {
    id = await nextUserId(catalog)
  } finally {
    catalog.release()
  }
  const shard = shardOf(ctx, id)
  try {
    const [row] = await writeToShard(ctx, shard, (server) =>
      query<{created_at: Date}>(
        ctx,
        server,
        `INSERT INTO ${schema(shard)}.users (id, username, name) VALUES ($1::bigint, $2, $3) RETURNING created_at`,
        [idText(id), input.username, input.name],
      ),
    )
    return {id: idText(id), username: input.username, name: input.name, bio: '', createdAt: row!.created_at.toISOString(), followers: 0, following: 0}
  } catch (err) {
    if (pgCode(err) === '23505') throw conflict(`username "${input.username}" is taken`)
    throw err
  }
}

export async function getUsers(ctx: DataContext, ids: bigint[]): Promise<Map<bigint, UserObject>> {
  return ctx.users.getMany(ids, (missing) => loadUsers(ctx, missing))
}

export async function getUser(ctx: DataContext, id: bigint): Promise<UserObject> {
  const user = (await getUsers(ctx, [id])).get(id)
  if (!user) throw notFound(`user ${id} not found`)
  return user
}

/** Users from Postgres, one query per physical server (UNION ALL over its shards), counts included. */
export async function loadUsers(ctx: DataContext, ids: bigint[]): Promise<Map<bigint, UserObject>> {
  const byServer = groupBy(
    groupBy(ids, (id) => shardOf(ctx, id)),
    ([shard]) => ctx.maps.serverOf(shard),
  )
  const followersP = ctx.redis.mget(ids.map(followersKey))
  const rowsPerServer = await Promise.all(
    [...byServer].map(([server, shards]) => {
      const values: unknown[] = []
      const parts = shards.map(([shard, shardIds]) => {
        values.push(idArray(shardIds))
        const s = schema(shard)
        return `SELECT u.id::text, u.username, u.name, u.bio, u.created_at,
                  (SELECT count(*) FROM ${s}.follows f WHERE f.follower_id = u.id)::int AS following
                FROM ${s}.users u WHERE u.id = ANY($${values.length}::bigint[])`
      })
      return query<UserRow>(ctx, server, `/* app:users */ ${parts.join('\nUNION ALL\n')}`, values)
    }),
  )
  const followers = await followersP
  const countOf = new Map(ids.map((id, i) => [id, Math.max(0, Number(followers[i] ?? 0))]))
  const out = new Map<bigint, UserObject>()
  for (const r of rowsPerServer.flat()) {
    const id = BigInt(r.id)
    out.set(id, {
      id: r.id,
      username: r.username,
      name: r.name,
      bio: r.bio,
      createdAt: r.created_at.toISOString(),
      followers: countOf.get(id) ?? 0,
      following: r.following,
    })
  }
  return out
}

/** Adds the edge userId → targetId; true when it was new. */
export async function follow(ctx: DataContext, userId: bigint, targetId: bigint): Promise<boolean> {
  if (userId === targetId) throw badRequest('a user cannot follow themselves')
  await getUser(ctx, targetId)
  const shard = shardOf(ctx, userId)
  const rows = await writeToShard(ctx, shard, (server) =>
    query(
      ctx,
      server,
      `INSERT INTO ${schema(shard)}.follows (follower_id, followee_id) VALUES ($1::bigint, $2::bigint)
       ON CONFLICT DO NOTHING RETURNING 1`,
      [idText(userId), idText(targetId)],
    ),
  )
  const added = rows.length === 1
  if (added) await ctx.redis.incr(followersKey(targetId))
  await ctx.users.invalidate(userId, targetId)
  return added
}

/** Removes the edge userId → targetId; true when it existed. */
export async function unfollow(ctx: DataContext, userId: bigint, targetId: bigint): Promise<boolean> {
  const shard = shardOf(ctx, userId)
  const rows = await writeToShard(ctx, shard, (server) =>
    query(
      ctx,
      server,
      `DELETE FROM ${schema(shard)}.follows WHERE follower_id = $1::bigint AND followee_id = $2::bigint RETURNING 1`,
      [idText(userId), idText(targetId)],
    ),
  )
  const removed = rows.length === 1
  if (removed) await ctx.redis.decr(followersKey(targetId))
  await ctx.users.invalidate(userId, targetId)
  return removed
}

/** Ids the user follows, from the user's own shard. */
export async function followees(ctx: DataContext, userId: bigint): Promise<bigint[]> {
  const shard = shardOf(ctx, userId)
  const rows = await query<{id: string}>(
    ctx,
    ctx.maps.serverOf(shard),
    `/* app:followees */ SELECT followee_id::text AS id FROM ${schema(shard)}.follows WHERE follower_id = $1::bigint`,
    [idText(userId)],
  )
  return rows.map((r) => BigInt(r.id))
}
