/**
 * A load's data (the deploy bench and the deploy test): users, follows and photos made through the app's API before the load (so the
 * load has feeds to read, tokens to write with and photos to like), and afterwards the load's acknowledged
 * writes counted in Postgres, shard by shard, against what the load generator recorded.
 */
import type {ShardsSettings} from '../../../src/config/schema.js'
import {schemaName} from '../../../src/shards/placement.js'
import {withClient} from '../../shards/helpers.js'
import type {LoadPlan, LoadResult} from './process.js'

async function post(url: string, body: unknown, token?: string): Promise<any> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {'content-type': 'application/json', ...(token ? {authorization: `Bearer ${token}`} : {})},
    body: JSON.stringify(body),
  })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`POST ${url} answered ${res.status}: ${text.slice(0, 300)}`)
  return JSON.parse(text)
}

/** `users` users each following the next 10 and owning `photosEach` photos, made through `url` (an NGINX node). */
export async function preparePlan(url: string, urls: string[], opts: {users: number; photosEach: number}): Promise<LoadPlan> {
  const tag = `dbench${Date.now().toString(36)}`
  const users: LoadPlan['users'] = []
  for (let i = 0; i < opts.users; i++) {
    const r = (await post(`${url}/users`, {username: `${tag}_${i}`, name: `Bench ${i}`})) as {user: {id: string}; token: string}
    users.push({id: r.user.id, token: r.token})
  }
  const photos: string[] = []
  for (const [i, u] of users.entries()) {
    for (let k = 1; k <= Math.min(10, users.length - 1); k++) {
      const target = users[(i + k) % users.length]!
      const res = await fetch(`${url}/users/${u.id}/following/${target.id}`, {method: 'PUT', headers: {authorization: `Bearer ${u.token}`}})
      if (res.status !== 200) throw new Error(`follow answered ${res.status}: ${await res.text()}`)
    }
    for (let p = 0; p < opts.photosEach; p++) {
      const r = (await post(`${url}/photos`, {caption: `${tag}-seed`, s3Key: `bench/${tag}/${i}-${p}.jpg`}, u.token)) as {photo: {id: string}}
      photos.push(r.photo.id)
    }
  }
  return {urls, tag, users, photos}
}

export interface WriteCount {
  ackedPhotos: number
  ackedLikes: number
  /** Acknowledged and not in Postgres. */
  lost: number
  /** In Postgres more than once (a new photo's caption is unique per request; a like's key is (photo, user)). */
  appliedTwice: number
  /** Applied without an acknowledgement (the client saw an error or no answer): allowed, reported. */
  appliedUnacked: number
}

/** Counts the load's new photos (by caption) and likes (by pair) in every logical shard. */
export async function countWrites(shards: ShardsSettings, plan: LoadPlan, load: LoadResult): Promise<WriteCount> {
  const map = await withClient(shards.catalog, (c) => c.query<{shard: number; server: string}>('SELECT shard, server FROM shard_map'))
  const captions = new Map<string, number>()
  const likes = new Map<string, number>()
  for (const server of shards.servers) {
    const schemas = map.rows.filter((r) => r.server === server.name).map((r) => schemaName(r.shard))
    if (schemas.length === 0) continue
    await withClient(server.url, async (c) => {
      const newPhotos = schemas.map((s) => `SELECT caption FROM ${s}.photos WHERE caption LIKE $1`).join(' UNION ALL ')
      const photoRows = await c.query<{caption: string; n: number}>(
        `SELECT caption, count(*)::int AS n FROM (${newPhotos}) t GROUP BY caption`,
        [`${plan.tag}-n%`],
      )
      for (const r of photoRows.rows) captions.set(r.caption, (captions.get(r.caption) ?? 0) + r.n)
      const likeRows = await c.query<{pair: string}>(
        schemas.map((s) => `SELECT photo_id::text || ':' || user_id::text AS pair FROM ${s}.likes WHERE photo_id = ANY($1::bigint[])`).join(' UNION ALL '),
        [plan.photos],
      )
      for (const r of likeRows.rows) likes.set(r.pair, (likes.get(r.pair) ?? 0) + 1)
    })
  }
  const ackedCaptions = new Set(load.ackedPhotos.map((p) => p.caption))
  const ackedPairs = new Set(load.ackedLikes.map((l) => `${l.photoId}:${l.userId}`))
  const lost =
    [...ackedCaptions].filter((c) => !captions.has(c)).length + [...ackedPairs].filter((p) => !likes.has(p)).length
  const appliedTwice = [...captions.values(), ...likes.values()].filter((n) => n > 1).length
  const appliedUnacked =
    [...captions.keys()].filter((c) => !ackedCaptions.has(c)).length + [...likes.keys()].filter((p) => !ackedPairs.has(p)).length
  return {ackedPhotos: ackedCaptions.size, ackedLikes: ackedPairs.size, lost, appliedTwice, appliedUnacked}
}
