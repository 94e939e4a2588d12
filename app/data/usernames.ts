import {shardOfUser, shardOfUsername} from '../../src/shards/placement.js'
import {conflict} from '../http/errors.js'
import {idText, query, schema, type DataContext} from './context.js'
import {readWithMap, writeToShard} from './shard-write.js'

/**
 * Usernames, unique across the service and case-insensitively, with no central table: a name's claim lives
 * in the logical shard its lower-cased form hashes to (shardOfUsername), where a primary key decides between
 * concurrent signups. The user row is made after the claim, in the user's own shard; a failed signup
 * removes its claim. A claim older than STALE_CLAIM_SECONDS whose user row does not exist (the process died
 * between the two writes) is taken over by the next signup of that name.
 */
const STALE_CLAIM_SECONDS = 60

const shardOfName = (ctx: DataContext, username: string) => shardOfUsername(username, ctx.maps.logical)

/** Claims the name for userId; a 409 when someone else holds it. */
export async function claimUsername(ctx: DataContext, username: string, userId: bigint): Promise<void> {
  const name = username.toLowerCase()
  const shard = shardOfName(ctx, name)
  const s = schema(shard)
  // Through writeToShard: the claim's shard may be moving, or this map stale (fence or dropped copy: retried).
  const [row] = await writeToShard(ctx, shard, (server) =>
    query<{claimed: boolean; holder: string; stale: boolean}>(
      ctx,
      server,
      `WITH ins AS (INSERT INTO ${s}.usernames (username, user_id) VALUES ($1, $2::bigint) ON CONFLICT DO NOTHING RETURNING 1)
       SELECT EXISTS (SELECT 1 FROM ins) AS claimed, u.user_id::text AS holder,
              u.claimed_at < now() - make_interval(secs => ${STALE_CLAIM_SECONDS}) AS stale
       FROM (SELECT 1) one LEFT JOIN ${s}.usernames u ON u.username = $1`,
      [name, idText(userId)],
    ),
  )
  if (row?.claimed) return
  const taken = conflict(`username "${username}" is taken`)
  if (!row?.stale || !row.holder) throw taken
  const holder = BigInt(row.holder)
  const holderShard = shardOfUser(holder, ctx.maps.logical)
  const exists = await readWithMap(ctx, () =>
    query(ctx, ctx.maps.serverOf(holderShard), `SELECT 1 FROM ${schema(holderShard)}.users WHERE id = $1::bigint`, [row.holder]),
  )
  if (exists.length > 0) throw taken
  // Take the abandoned claim over, unless another signup just did.
  const took = await writeToShard(ctx, shard, (server) =>
    query(
      ctx,
      server,
      `UPDATE ${s}.usernames SET user_id = $2::bigint, claimed_at = now() WHERE username = $1 AND user_id = $3::bigint RETURNING 1`,
      [name, idText(userId), idText(holder)],
    ),
  )
  if (took.length === 0) throw taken
  ctx.log.info({username: name, abandonedBy: idText(holder)}, 'took over an abandoned username claim')
}

/** Removes userId's claim of the name (after its signup failed). */
export async function releaseUsername(ctx: DataContext, username: string, userId: bigint): Promise<void> {
  const name = username.toLowerCase()
  const shard = shardOfName(ctx, name)
  await writeToShard(ctx, shard, (server) =>
    query(ctx, server, `DELETE FROM ${schema(shard)}.usernames WHERE username = $1 AND user_id = $2::bigint`, [name, idText(userId)]),
  )
}

/** The id of the user who holds the name (any case), or null. */
export async function userIdByName(ctx: DataContext, username: string): Promise<bigint | null> {
  const name = username.toLowerCase()
  const shard = shardOfName(ctx, name)
  const [row] = await readWithMap(ctx, () =>
    query<{id: string}>(
      ctx,
      ctx.maps.serverOf(shard),
      `/* app:username */ SELECT user_id::text AS id FROM ${schema(shard)}.usernames WHERE username = $1`,
      [name],
    ),
  )
  return row ? BigInt(row.id) : null
}
