import type {ValidSeedOptions} from './options.js'
import type {Plan} from './plan.js'

export interface SeedServerResult {
  server: string
  shards: number
  users: number
  photos: number
  follows: number
  error?: string
}

export interface SeedResult {
  users: number
  photos: number
  follows: number
  /** Photos whose generated id already existed (from an earlier seed) and were skipped. */
  skippedPhotos: number
  /** Photo→owner mappings written to Redis. */
  mapped: number
  userIds: {first: string; last: string} | null
  photoTimes: {from: string; to: string} | null
  followsPerUser: Distribution
  followersPerUser: Distribution
  photosPerUser: Distribution
  logical: number
  servers: SeedServerResult[]
  /** The photo map afterwards (it grows by itself). */
  photoMap: {mappings: number; buckets: number}
  /** Users whose follower and following counts were written to Redis, and the follows counted (all seeds). */
  counts: {users: number; follows: number}
  warnings: string[]
  seconds: number
}

export interface Distribution {
  median: number
  p90: number
  p99: number
  max: number
}

export function distribution(values: Uint32Array): Distribution {
  if (values.length === 0) return {median: 0, p90: 0, p99: 0, max: 0}
  const s = Uint32Array.from(values).sort()
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!
  return {median: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1]!}
}

/** The seed's result: the loaded counts per server, and the statistics of the data it drew. */
export function summarize(
  plan: Plan,
  opts: ValidSeedOptions,
  servers: SeedServerResult[],
  rest: Pick<SeedResult, 'skippedPhotos' | 'mapped' | 'photoMap' | 'counts' | 'warnings' | 'seconds'>,
): SeedResult {
  const total = (k: 'users' | 'photos' | 'follows') => servers.reduce((a, s) => a + s[k], 0)
  const photosPerUser = new Uint32Array(plan.userIds.length)
  for (const list of plan.photosByShard) for (const owner of list) photosPerUser[owner]!++
  const ids = plan.userIds
  return {
    users: total('users'),
    photos: total('photos'),
    follows: total('follows'),
    skippedPhotos: rest.skippedPhotos,
    mapped: rest.mapped,
    userIds: ids.length ? {first: String(ids[0]), last: String(ids[ids.length - 1])} : null,
    photoTimes: opts.photos > 0 ? {from: new Date(plan.start).toISOString(), to: new Date(plan.end).toISOString()} : null,
    followsPerUser: distribution(plan.followCounts),
    followersPerUser: distribution(plan.followerCounts),
    photosPerUser: distribution(photosPerUser),
    logical: plan.world.logical,
    servers,
    photoMap: rest.photoMap,
    counts: rest.counts,
    warnings: rest.warnings,
    seconds: rest.seconds,
  }
}
