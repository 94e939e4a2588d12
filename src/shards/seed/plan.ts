import {encodeId, MAX_SEQ} from '../ids.js'
import type {ShardWorld} from '../photo-map/shards.js'
import {shardOfUser, shardOfUsername} from '../placement.js'
import type {ValidSeedOptions} from './options.js'

/** What the seed writes, drawn up front: users per shard, follow counts, popularity, photo owners and times (see index.ts). */
const FOLLOW_SIGMA = 1.1
/** Share of follow picks made by popularity rank (the rest are uniform). */
const POPULAR_SHARE = 0.7
/** Zipf-like ranks: log-uniform over [ZIPF_OFFSET, users + ZIPF_OFFSET). */
const ZIPF_OFFSET = 10

export interface Plan {
  world: ShardWorld
  userIds: Float64Array
  /** Per shard: indexes into userIds. */
  usersByShard: Uint32Array[]
  /** Per shard: indexes of the users whose username's claim lives there (shardOfUsername of `user<id>`). */
  claimsByShard: Uint32Array[]
  /** Per shard: owner indexes of its photos. */
  photosByShard: Uint32Array[]
  followCounts: Uint32Array
  followerCounts: Uint32Array
  popular: Uint32Array
  start: number
  end: number
}

export function makePlan(world: ShardWorld, userIds: Float64Array, opts: ValidSeedOptions): Plan {
  const n = userIds.length
  const {shardOf, byShard: usersByShard} = placeItems(n, world.logical, (i) => shardOfUser(BigInt(userIds[i]!), world.logical))
  const {byShard: claimsByShard} = placeItems(n, world.logical, (i) => shardOfUsername(`user${userIds[i]}`, world.logical))

  // follow counts: lognormal around the median, capped by the number of other users
  const followCounts = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    followCounts[i] = Math.min(n - 1, Math.round(opts.followsMedian * Math.exp(FOLLOW_SIGMA * gaussian())))
  }
  // popularity: a random order of users; rank r is picked with probability ∝ 1/(r + ZIPF_OFFSET)
  const popular = new Uint32Array(n)
  for (let i = 0; i < n; i++) popular[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    const t = popular[i]!
    popular[i] = popular[j]!
    popular[j] = t
  }

  // photo owners: index ∝ r², so low indexes (older users) post more
  const owners = new Uint32Array(opts.photos)
  const photosPerShard = new Uint32Array(world.logical)
  for (let p = 0; p < opts.photos; p++) {
    const r = Math.random()
    owners[p] = Math.min(n - 1, Math.floor(n * r * r))
    photosPerShard[shardOf[owners[p]!]!]!++
  }
  const photosByShard = groupByShard(opts.photos, (p) => shardOf[owners[p]!]!, photosPerShard).map((idx) => idx.map((p) => owners[p]!))
  const end = opts.now - 60_000
  return {
    world,
    userIds,
    usersByShard,
    claimsByShard,
    photosByShard,
    followCounts,
    followerCounts: new Uint32Array(n),
    popular,
    start: end - opts.days * 86_400_000,
    end,
  }
}

/** Each of `n` items' shard (by `place`) and, per shard, the indexes of its items. */
function placeItems(n: number, logical: number, place: (i: number) => number): {shardOf: Uint16Array; byShard: Uint32Array[]} {
  const shardOf = new Uint16Array(n)
  const counts = new Uint32Array(logical)
  for (let i = 0; i < n; i++) {
    shardOf[i] = place(i)
    counts[shardOf[i]!]!++
  }
  return {shardOf, byShard: groupByShard(n, (i) => shardOf[i]!, counts)}
}

function groupByShard(n: number, shardOf: (i: number) => number, counts: Uint32Array): Uint32Array[] {
  const out = Array.from(counts, (c) => new Uint32Array(c))
  const fill = new Uint32Array(counts.length)
  for (let i = 0; i < n; i++) {
    const s = shardOf(i)
    out[s]![fill[s]!++] = i
  }
  return out
}

function gaussian(): number {
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())
}

export /** Distinct users `f` follows (never itself), sorted so the primary key is written in order. */
function pickFollowees(f: number, plan: Plan, marks: Int32Array): number[] {
  const n = plan.userIds.length
  const want = plan.followCounts[f]!
  const picked: number[] = []
  marks[f] = f
  const logSpan = Math.log((n + ZIPF_OFFSET) / ZIPF_OFFSET)
  for (let attempts = 0; picked.length < want && attempts < want * 20 + 100; attempts++) {
    let t: number
    if (Math.random() < POPULAR_SHARE) {
      const rank = Math.floor(ZIPF_OFFSET * Math.exp(Math.random() * logSpan)) - ZIPF_OFFSET
      t = plan.popular[Math.min(n - 1, rank)]!
    } else {
      t = Math.floor(Math.random() * n)
    }
    if (marks[t] === f) continue
    marks[t] = f
    picked.push(t)
  }
  plan.followCounts[f] = picked.length
  return picked.sort((a, b) => plan.userIds[a]! - plan.userIds[b]!)
}

export interface PhotoRows {
  ids: bigint[]
  owners: Uint32Array
  /** ms since 1970 of each photo (= the id's time). */
  times: Float64Array
  userIds: Float64Array
}

/** Ids in time order for one shard's photos (see the module comment for the sequence rule). */
export function photoRows(shard: number, owners: Uint32Array, plan: Plan): PhotoRows {
  const n = owners.length
  const times = new Float64Array(n)
  for (let i = 0; i < n; i++) times[i] = Math.floor(plan.start + Math.random() * (plan.end - plan.start))
  times.sort()
  const epoch = Number(plan.world.epoch)
  const ids = new Array<bigint>(n)
  let lastMs = -1
  let lastSeq = 0
  for (let i = 0; i < n; i++) {
    let ms = times[i]! - epoch
    let seq: number
    if (ms > lastMs) {
      seq = Math.floor(Math.random() * 512)
    } else {
      ms = lastMs
      seq = lastSeq + 1
      if (seq > MAX_SEQ) {
        ms = lastMs + 1
        seq = 0
      }
    }
    lastMs = ms
    lastSeq = seq
    times[i] = ms + epoch
    ids[i] = encodeId({msSinceEpoch: BigInt(ms), shard, seq})
  }
  return {ids, owners, times, userIds: plan.userIds}
}

