import type {Redis} from 'ioredis'

import type {Logger} from '../logger.js'

/** Where a revocation is announced: `<userId>:<generation>`. */
export const TOKEN_GEN_CHANNEL = 'feedops:token-gen'

/**
 * This process's copy of users' token generations (the truth is users.token_gen in the user's shard), so that
 * checking a token on a write costs no round trip once the user has been seen. A revocation is announced on
 * Redis and applied here at once; an entry is also re-read after `maxAgeMs`, which bounds how long a
 * revoked token can still work here when an announcement was missed (Redis down, reconnecting).
 */
export class TokenGenerations {
  private readonly known = new Map<bigint, {generation: number; at: number}>()
  private subscriber: Redis | undefined

  constructor(
    private readonly opts: {redis?: Redis; log: Logger; maxAgeMs?: number; maxEntries?: number},
  ) {}

  async start(): Promise<void> {
    if (!this.opts.redis) return
    const sub = this.opts.redis.duplicate()
    this.subscriber = sub
    sub.on('error', (err: Error) => this.opts.log.warn({err: err.message}, 'token generation subscription error'))
    sub.on('message', (channel: string, message: string) => {
      const m = /^(\d{1,20}):(\d{1,10})$/.exec(message)
      if (channel === TOKEN_GEN_CHANNEL && m) this.learn(BigInt(m[1]!), Number(m[2]))
    })
    await sub.subscribe(TOKEN_GEN_CHANNEL)
  }

  stop(): void {
    this.subscriber?.disconnect()
    this.subscriber = undefined
  }

  /** The generation known for a user, if seen within maxAgeMs. */
  get(userId: bigint): number | undefined {
    const e = this.known.get(userId)
    if (!e) return undefined
    if (Date.now() - e.at > (this.opts.maxAgeMs ?? 60_000)) {
      this.known.delete(userId)
      return undefined
    }
    return e.generation
  }

  /** Records a generation read from (or just written to) the user's shard. Generations only grow. */
  learn(userId: bigint, generation: number): void {
    const had = this.known.get(userId)
    this.known.delete(userId) // re-inserted last: the Map's order is the eviction order
    this.known.set(userId, {generation: Math.max(generation, had?.generation ?? 0), at: Date.now()})
    if (this.known.size > (this.opts.maxEntries ?? 200_000)) this.known.delete(this.known.keys().next().value!)
  }

  /** Tells every app process (this one included) of a new generation. */
  async announce(userId: bigint, generation: number): Promise<void> {
    this.learn(userId, generation)
    await this.opts.redis
      ?.publish(TOKEN_GEN_CHANNEL, `${userId}:${generation}`)
      .catch((err: Error) => this.opts.log.warn({err: err.message}, 'token generation announcement failed'))
  }
}
