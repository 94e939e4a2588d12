import {UserError} from '../../errors.js'

export interface SeedOptions {
  users: number
  photos: number
  /** Median follows per user (default 30). */
  followsMedian?: number
  /** Photo times are spread over this many days up to now (default 182). */
  days?: number
  /** Rows per COPY statement (default 100,000). */
  batch?: number
  /** Concurrent shard loads per physical server (default 2). */
  connections?: number
  /** "Now" in ms since 1970 (default Date.now()); photo times end one minute before it. */
  now?: number
}

export const SEED_LIMITS = {users: 10_000_000, photos: 100_000_000, followsMedian: 10_000, days: 3650} as const

export type ValidSeedOptions = Required<Omit<SeedOptions, 'now'>> & {now: number}

export function validateSeedOptions(opts: SeedOptions): ValidSeedOptions {
  const o = {
    users: opts.users,
    photos: opts.photos,
    followsMedian: opts.followsMedian ?? 30,
    days: opts.days ?? 182,
    batch: opts.batch ?? 100_000,
    connections: opts.connections ?? 2,
    now: opts.now ?? Date.now(),
  }
  const check = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new UserError(`--${name} ${v} is out of range (${min}..${max.toLocaleString('en-US')}).`, {
        fix: `Pass --${name} as a whole number between ${min} and ${max}.`,
      })
    }
  }
  check('users', o.users, 1, SEED_LIMITS.users)
  check('photos', o.photos, 0, SEED_LIMITS.photos)
  check('follows-median', o.followsMedian, 0, SEED_LIMITS.followsMedian)
  check('days', o.days, 1, SEED_LIMITS.days)
  check('batch', o.batch, 100, 1_000_000)
  check('connections', o.connections, 1, 16)
  return o
}

