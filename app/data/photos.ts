import {decodeId} from '../../src/shards/ids.js'
import {notFound} from '../http/errors.js'
import {idText, pgCode, query, schema, type DataContext} from './context.js'
import {readWithMap, writeToShard} from './shard-write.js'
import {shardOf} from './users.js'

/**
 * Photos and likes. A photo lives in its owner's shard and its id carries that shard (bits 10..22), so a
 * photo is found from its id alone; its likes live next to it.
 */

export interface PhotoObject {
  id: string
  userId: string
  caption: string
  s3Key: string
  url: string
  createdAt: string
  likeCount: number
}

export interface PhotoRow {
  id: string
  user_id: string
  caption: string
  s3_key: string
  created_at: Date
  like_count: number
}

export function cdnUrl(cdnBase: string, s3Key: string): string {
  return `${cdnBase.replace(/\/+$/, '')}/${s3Key.split('/').map(encodeURIComponent).join('/')}`
}

export function photoView(ctx: DataContext, r: PhotoRow): PhotoObject {
  return {
    id: r.id,
    userId: r.user_id,
    caption: r.caption,
    s3Key: r.s3_key,
    url: cdnUrl(ctx.cdnBase, r.s3_key),
    createdAt: r.created_at.toISOString(),
    likeCount: r.like_count,
  }
}

/** The logical shard a photo id points at, or a 404 when no such shard exists. */
export function shardOfPhoto(ctx: DataContext, photoId: bigint): number {
  const {shard} = decodeId(photoId, 0n)
  if (shard >= ctx.maps.logical) throw notFound(`photo ${photoId} not found`)
  return shard
}

export const PHOTO_COLUMNS = (s: string) =>
  `p.id::text, p.user_id::text, p.caption, p.s3_key, p.created_at,
   (SELECT count(*) FROM ${s}.likes l WHERE l.photo_id = p.id)::int AS like_count`

export async function createPhoto(ctx: DataContext, userId: bigint, input: {caption: string; s3Key: string}): Promise<PhotoObject> {
  const shard = shardOf(ctx, userId)
  let row: PhotoRow
  try {
    ;[row] = (await writeToShard(ctx, shard, (server) =>
      query<PhotoRow>(
        ctx,
        server,
        `INSERT INTO ${schema(shard)}.photos (user_id, caption, s3_key) VALUES ($1::bigint, $2, $3)
         RETURNING id::text, user_id::text, caption, s3_key, created_at, 0 AS like_count`,
        [idText(userId), input.caption, input.s3Key],
      ),
    )) as [PhotoRow]
  } catch (err) {
    if (pgCode(err) === '23503') throw notFound(`user ${userId} not found`)
    throw err
  }
  const id = BigInt(row.id)
  // The row is the truth; a photo missing from the owner map is still readable (the feed falls back to the row).
  await ctx.photoMap.set(id, userId).catch((err: Error) => ctx.log.error({err: err.message, photoId: row.id}, 'photo owner map write failed'))
  return photoView(ctx, row)
}

export async function getPhoto(ctx: DataContext, photoId: bigint): Promise<PhotoObject> {
  const shard = shardOfPhoto(ctx, photoId)
  const s = schema(shard)
  const [row] = await readWithMap(ctx, () =>
    query<PhotoRow>(ctx, ctx.maps.serverOf(shard), `SELECT ${PHOTO_COLUMNS(s)} FROM ${s}.photos p WHERE p.id = $1::bigint`, [idText(photoId)]),
  )
  if (!row) throw notFound(`photo ${photoId} not found`)
  return photoView(ctx, row)
}

/** Likes (liked = true) or unlikes a photo for a user; 404 when the photo does not exist. */
export async function setLike(ctx: DataContext, photoId: bigint, userId: bigint, liked: boolean): Promise<void> {
  const shard = shardOfPhoto(ctx, photoId)
  const s = schema(shard)
  const change = liked
    ? `INSERT INTO ${s}.likes (photo_id, user_id) SELECT id, $2::bigint FROM p ON CONFLICT DO NOTHING RETURNING 1`
    : `DELETE FROM ${s}.likes WHERE photo_id IN (SELECT id FROM p) AND user_id = $2::bigint RETURNING 1`
  const [row] = await writeToShard(ctx, shard, (server) =>
    query<{found: boolean}>(
      ctx,
      server,
      `WITH p AS (SELECT id FROM ${s}.photos WHERE id = $1::bigint), c AS (${change}) SELECT EXISTS (SELECT 1 FROM p) AS found`,
      [idText(photoId), idText(userId)],
    ),
  )
  if (!row?.found) throw notFound(`photo ${photoId} not found`)
}
