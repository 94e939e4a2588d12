import type memjs from 'memjs'

import type {Logger} from '../logger.js'

/** A user as Memcached keeps it (ids as strings, so the JSON round-trips): no counts, they change too often. */
export interface UserProfile {
  id: string
  username: string
  name: string
  bio: string
  createdAt: string
}

/** A user as the API shows it: the profile with its counts from Redis. */
export interface UserObject extends UserProfile {
  followers: number
  following: number
}

const key = (id: bigint) => `feedops:user:${id}`

/**
 * User objects in Memcached: read many at once, fill misses from Postgres (the caller's loader), delete on
 * every change. memjs has no multi-get command, but concurrent gets go out back to back on each server's one
 * connection and are matched by opaque id, so a batch costs one round trip per Memcached server. A Memcached
 * failure is a miss, never a failed request.
 */
export class UserCache {
  constructor(
    private readonly client: memjs.Client,
    private readonly opts: {ttlSeconds: number; log: Logger},
  ) {}

  async getMany(ids: bigint[], load: (missing: bigint[]) => Promise<Map<bigint, UserProfile>>): Promise<Map<bigint, UserProfile>> {
    const unique = [...new Set(ids)]
    const found = new Map<bigint, UserProfile>()
    const cached = await Promise.all(unique.map((id) => this.read(id)))
    const missing: bigint[] = []
    unique.forEach((id, i) => {
      const hit = cached[i]
      if (hit) found.set(id, hit)
      else missing.push(id)
    })
    if (missing.length > 0) {
      const loaded = await load(missing)
      for (const [id, user] of loaded) {
        found.set(id, user)
        void this.client
          .set(key(id), JSON.stringify(user), {expires: this.opts.ttlSeconds})
          .catch((err: Error) => this.opts.log.warn({err: err.message}, 'memcached set failed'))
      }
    }
    return found
  }

  async invalidate(...ids: bigint[]): Promise<void> {
    await Promise.all(
      ids.map((id) => this.client.delete(key(id)).catch((err: Error) => this.opts.log.warn({err: err.message}, 'memcached delete failed'))),
    )
  }

  private async read(id: bigint): Promise<UserProfile | undefined> {
    try {
      const {value} = await this.client.get(key(id))
      return value ? (JSON.parse(value.toString('utf8')) as UserProfile) : undefined
    } catch (err) {
      this.opts.log.warn({err: (err as Error).message}, 'memcached get failed')
      return undefined
    }
  }
}
