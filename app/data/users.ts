import {nextUserId} from '../../src/shards/catalog.js'
import {moveFollowCounts, readFollowCounts} from '../../src/shards/counts.js'
import {shardOfUser} from '../../src/shards/placement.js'
import {badRequest, conflict, notFound} from '../http/errors.js'
import {idText, pgCode, query, schema, type DataContext} from './context.js'
import {queryByServer} from './per-server.js'
import {readWithMap, writeToShard} from './shard-write.js'
import {claimUsername, releaseUsername, userIdByName} from './usernames.js'
import type {UserObject, UserProfile} from './user-cache.js'

/**
 * Users and the follow graph. A user's row and the users they follow live in the user's logical shard
 * (hash of the id). Both follow counts live in Redis (src/shards/counts.ts), moved only when Postgres
 * says an edge was really added or removed, and are read with every user: the Memcached user object holds
 * the profile alone, so no cached copy can keep a count that a concurrent follow has since changed.
 */

interface UserRow {
  id: string
  username: string
  name: string
  bio: string
  created_at: Date
}

export function shardOf(ctx: DataContext, userId: bigint): number {
  return shardOfUser(userId, ctx.maps.logical)
}

/**
 * A new user: an id from the catalog, the username claimed on the shard its name hashes to (409 when taken),
 * then the user row in the user's shard. When the row cannot be made the claim is released, so the name is
 * free again. (A name already taken costs a user id, as any failed insert costs a sequence number.)
 */
export async function createUser(ctx: DataContext, input: {username: string; name: string}): Promise<UserObject> {
  const catalog = await ctx.pools.catalog.connect()
  let id: bigint
  try {
    id = await nextUserId(catalog)
  } finally {
    catalog.release()
  }
  await claimUsername(ctx, input.username, id)
  const shard = shardOf(ctx, id)
  try {
    // The answer is what Postgres stored, not the input: text the driver had to mend on its way (a lone
    // UTF-16 surrogate becomes U+FFFD in UTF-8) reads back as stored.
    const [row] = await writeToShard(ctx, shard, (server) =>
      query<UserRow>(
        ctx,
        server,
        `INSERT INTO ${schema(shard)}.users (id, username, name) VALUES ($1::bigint, $2, $3)
         RETURNING id::text, username, name, bio, created_at`,
        [idText(id), input.username, input.name],
      ),
    )
    const r = row!
    return {id: r.id, username: r.username, name: r.name, bio: r.bio, createdAt: r.created_at.toISOString(), followers: 0, following: 0}
  } catch (err) {
    await releaseUsername(ctx, input.username, id).catch((e: Error) =>
      ctx.log.error({err: e.message, username: input.username}, 'could not release the username claim of a failed signup'),
    )
    // A user row with this name but no claim (made before claims existed) still holds the name in its shard.
    if (pgCode(err) === '23505') throw conflict(`username "${input.username}" is taken`)
    throw err
  }
}

/** The user holding a username (any case); 404 when nobody does. */
export async function getUserByName(ctx: DataContext, username: string): Promise<UserObject> {
  const id = await userIdByName(ctx, username)
  // A claim without its user row yet is a signup in progress (or one that died): not a user.
  const user = id === null ? undefined : (await getUsers(ctx, [id])).get(id)
  if (!user) throw notFound(`no user is named "${username}"`)
  return user
}

/** The user's current token generation, or null when there is no such user. */
export async function tokenGeneration(ctx: DataContext, userId: bigint): Promise<number | null> {
  const shard = shardOf(ctx, userId)
  const [row] = await readWithMap(ctx, () =>
    query<{gen: number}>(
      ctx,
      ctx.maps.serverOf(shard),
      `/* app:token-gen */ SELECT token_gen AS gen FROM ${schema(shard)}.users WHERE id = $1::bigint`,
      [idText(userId)],
    ),
  )
  return row ? row.gen : null
}

/**
 * Moves the user from token generation `seen` to the next (every token issued before is refused from now on);
 * null when the user is no longer in `seen` (a concurrent revoke moved it first) or does not exist.
 */
export async function bumpTokenGeneration(ctx: DataContext, userId: bigint, seen: number): Promise<number | null> {
  const shard = shardOf(ctx, userId)
  // A fenced statement changed nothing, so writeToShard may run it again where the map then points.
  // Conditional on the generation the request was authenticated with: of concurrent revokes one wins.
  const [row] = await writeToShard(ctx, shard, (server) =>
    query<{gen: number}>(
      ctx,
      server,
      `UPDATE ${schema(shard)}.users SET token_gen = token_gen + 1 WHERE id = $1::bigint AND token_gen = $2 RETURNING token_gen AS gen`,
      [idText(userId), seen],
    ),
  )
  return row ? row.gen : null
}

/** Profiles (Memcached, else Postgres) with their counts (Redis), fetched at once. */
export async function getUsers(ctx: DataContext, ids: bigint[]): Promise<Map<bigint, UserObject>> {
  const unique = [...new Set(ids)]
  const [profiles, counts] = await Promise.all([ctx.users.getMany(unique, (missing) => loadUsers(ctx, missing)), readFollowCounts(ctx.redis, unique)])
  const out = new Map<bigint, UserObject>()
  unique.forEach((id, i) => {
    const p = profiles.get(id)
    if (p) out.set(id, {...p, ...counts[i]!})
  })
  return out
}

export async function getUser(ctx: DataContext, id: bigint): Promise<UserObject> {
  const user = (await getUsers(ctx, [id])).get(id)
  if (!user) throw notFound(`user ${id} not found`)
  return user
}

/** Profiles from Postgres, one query per physical server (UNION ALL over its shards). */
export async function loadUsers(ctx: DataContext, ids: bigint[]): Promise<Map<bigint, UserProfile>> {
  const rows = await readWithMap(ctx, () =>
    queryByServer<UserRow>(
      ctx,
      'users',
      ids,
      (id) => shardOf(ctx, id),
      (s, userIds) => `SELECT u.id::text, u.username, u.name, u.bio, u.created_at
                FROM ${s}.users u WHERE u.id = ANY(${userIds})`,
    ),
  )
  const out = new Map<bigint, UserProfile>()
  for (const r of rows) {
    const id = BigInt(r.id)
    out.set(id, {
      id: r.id,
      username: r.username,
      name: r.name,
      bio: r.bio,
      createdAt: r.created_at.toISOString(),
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
  if (added) await moveCounts(ctx, userId, targetId, 1)
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
  if (removed) await moveCounts(ctx, userId, targetId, -1)
  return removed
}

/** The edge is in Postgres already: a Redis failure here is logged, not the request's (`shards recount` repairs it). */
async function moveCounts(ctx: DataContext, userId: bigint, targetId: bigint, delta: 1 | -1): Promise<void> {
  await moveFollowCounts(ctx.redis, userId, targetId, delta).catch((err: Error) =>
    ctx.log.error({err: err.message, userId: idText(userId), targetId: idText(targetId)}, 'follow count update failed'),
  )
}

/** Ids the user follows, from the user's own shard. */
export async function followees(ctx: DataContext, userId: bigint): Promise<bigint[]> {
  const shard = shardOf(ctx, userId)
  const rows = await readWithMap(ctx, () =>
    query<{id: string}>(
      ctx,
      ctx.maps.serverOf(shard),
      `/* app:followees */ SELECT followee_id::text AS id FROM ${schema(shard)}.follows WHERE follower_id = $1::bigint`,
      [idText(userId)],
    ),
  )
  return rows.map((r) => BigInt(r.id))
}
