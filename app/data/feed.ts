import {idText, preparedQuery, query, type DataContext} from './context.js'
import {idsByServer, queryByServer, unionAllOverShards} from './per-server.js'
import {PHOTO_COLUMNS, photoView, shardOfPhoto, type PhotoObject, type PhotoRow} from './photos.js'
import {readWithMap} from './shard-write.js'
import {followees, getUsers, shardOf} from './users.js'

export interface FeedItem extends PhotoObject {
  user: {id: string; username: string; name: string} | null
}

export interface FeedPage {
  items: FeedItem[]
  /** Pass as `before` for the next page; null on the last page. */
  next: string | null
}

const MAX_BIGINT = (1n << 63n) - 1n

/**
 * A reader's feed: the latest photos of the users they follow, newest first, paged by id (ids sort by time).
 *
 * 1. The followees come from the reader's shard.
 * 2. They are grouped by physical server; each server gets ONE query that UNION ALLs, over the logical shards
 *    it holds, a LATERAL walk of photos(user_id, id desc) per followed user (at most `limit` rows each), and
 *    keeps that server's newest `limit` ids. (`per-shard` sends one query per logical shard instead: the naive
 *    baseline the benchmark compares against.) Planning that UNION costs more than running it, so the query
 *    covers every shard of the server (see serverShards) and is a prepared statement: planned once per
 *    connection, not per read.
 * 3. The ids are merged across servers, newest first, and cut to `limit` (each server is asked for one more, so
 *    a page knows whether another follows it).
 * 4. In parallel: the photo rows (one query per server holding a winner), and the owners from the Redis photo
 *    map (one pipelined call) followed by their user objects from Memcached (misses filled from Postgres).
 */
export async function readFeed(ctx: DataContext, readerId: bigint, limit: number, before?: bigint): Promise<FeedPage> {
  const following = await followees(ctx, readerId)
  if (following.length === 0) return {items: [], next: null}
  const cursor = before ?? MAX_BIGINT

  const perBatch = await readWithMap(ctx, () => Promise.all(batchesOf(ctx, following).map((b) => latestIds(ctx, b.server, b.shards, cursor, limit))))
  const page = perBatch
    .flat()
    .sort((a, b) => (a < b ? 1 : a > b ? -1 : 0))
    .slice(0, limit)
  if (page.length === 0) return {items: [], next: null}

  const rowsP = photoRows(ctx, page)
  const usersP = ctx.photoMap.getMany(page).then(async (owners: (bigint | null)[]) => {
    const known = owners.filter((o): o is bigint => o !== null)
    return {owners, users: await getUsers(ctx, known)}
  })
  const [rows, {owners, users}] = await Promise.all([rowsP, usersP])

  // Owners the photo map did not know (should not happen; the row has the truth).
  const unknown = page.filter((id, i) => owners[i] === null && rows.has(id)).map((id) => BigInt(rows.get(id)!.user_id))
  if (unknown.length > 0) {
    ctx.log.warn({count: unknown.length}, 'photos missing from the owner map')
    for (const [id, u] of await getUsers(ctx, unknown)) users.set(id, u)
  }

  const items: FeedItem[] = []
  for (const id of page) {
    const row = rows.get(id)
    if (!row) continue // deleted between the two reads
    const u = users.get(BigInt(row.user_id))
    items.push({...photoView(ctx, row), user: u ? {id: u.id, username: u.username, name: u.name} : null})
  }
  // Each server gave up to limit + 1 ids (latestIds): one past the page says that another page follows.
  return {items, next: perBatch.flat().length > limit ? idText(page[page.length - 1]!) : null}
}

/** The feed-ids statements to send: one per server, or one per logical shard (per-shard), as the map is now. */
function batchesOf(ctx: DataContext, following: bigint[]): {server: string; shards: Map<number, bigint[]>}[] {
  const byServer = [...idsByServer(ctx, following, (id) => shardOf(ctx, id))]
  return ctx.feedStrategy === 'per-shard'
    ? byServer.flatMap(([server, shards]) => [...shards].map((entry) => ({server, shards: new Map([entry])})))
    : byServer.map(([server, shards]) => ({server, shards}))
}

/**
 * A server's feed-ids statement covers every logical shard it holds, with an empty array for shards none of
 * the reader's users are on, so their text (and plan) is the same for every reader until the map changes. Up
 * to this many shards per server; past it (8192 logical shards on few servers) an empty branch costs more
 * than planning the touched ones, and the statement covers only those.
 */
const STABLE_SHARDS_MAX = 64

function serverShards(ctx: DataContext, server: string, touched: ReadonlyMap<number, unknown>): {shards: readonly number[]; stable: boolean} {
  const all = ctx.maps.shardsOn(server)
  if (ctx.feedStrategy === 'per-server' && all.length <= STABLE_SHARDS_MAX && [...touched.keys()].every((s) => all.includes(s))) {
    return {shards: all, stable: true}
  }
  return {shards: [...touched.keys()], stable: false}
}

/**
 * The newest `limit` + 1 photo ids below the cursor of the given users, over some shards of one server: one
 * query. The one past the page is how the page knows whether it is the last.
 */
async function latestIds(ctx: DataContext, server: string, users: Map<number, bigint[]>, before: bigint, limit: number): Promise<bigint[]> {
  const plan = serverShards(ctx, server, users)
  const union = unionAllOverShards(
    plan.shards.map((shard) => [shard, users.get(shard) ?? []] as const),
    (s, followed) => `(SELECT p.id FROM unnest(${followed}) AS f(user_id)
              CROSS JOIN LATERAL (SELECT id FROM ${s}.photos
                                  WHERE user_id = f.user_id AND id < $1::bigint ORDER BY id DESC LIMIT $2) p)`,
    [idText(before), limit + 1],
  )
  const text = `/* app:feed-ids */ SELECT id FROM (${union.text}) t ORDER BY id DESC LIMIT $2`
  const rows = plan.stable
    ? await preparedQuery<{id: string}>(ctx, server, text, union.values)
    : await query<{id: string}>(ctx, server, text, union.values)
  return rows.map((r) => BigInt(r.id))
}

/**
 * Photo rows (with like counts) of the given ids: one query per physical server, over the shards holding
 * them. Not a prepared statement: which shards hold a page's photos varies from read to read, and a plan
 * covering all of them is one Postgres re-plans for every read anyway (it judges its generic plan worse).
 */
async function photoRows(ctx: DataContext, ids: bigint[]): Promise<Map<bigint, PhotoRow>> {
  const rows = await readWithMap(ctx, () =>
    queryByServer<PhotoRow>(
      ctx,
      'feed-rows',
      ids,
      (id) => shardOfPhoto(ctx, id),
      (s, photoIds) => `SELECT ${PHOTO_COLUMNS(s)} FROM ${s}.photos p WHERE p.id = ANY(${photoIds})`,
    ),
  )
  return new Map(rows.map((r) => [BigInt(r.id), r]))
}
