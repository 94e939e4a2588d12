import type {DataContext} from '../data/context.js'
import {bumpTokenGeneration, tokenGeneration} from '../data/users.js'
import {unauthorized} from '../http/errors.js'
import type {TokenGenerations} from './generations.js'
import {issueToken, verifyToken, type TokenClaims} from './token.js'

/** How far a token's expiry may lie past tokenTtl from now (the clocks of the app hosts differ a little). */
const CLOCK_SKEW_SECONDS = 60

/**
 * Issues and checks user tokens. A token is good when its text is exactly what this secret signs, it has not
 * expired, and its generation is the user's current one (known in this process after the first check, so a
 * write by a user seen before costs no extra round trip).
 */
export class Auth {
  constructor(
    private readonly data: DataContext,
    private readonly opts: {secret: string; ttlSeconds: number},
    readonly generations: TokenGenerations,
  ) {}

  /** A token for the user in the given generation, good for the configured lifetime from now. */
  issue(userId: bigint, generation: number): {token: string; expiresAt: string} {
    const expiresAt = Math.floor(Date.now() / 1000) + this.opts.ttlSeconds
    return {token: issueToken(this.opts.secret, {userId, generation, expiresAt}), expiresAt: new Date(expiresAt * 1000).toISOString()}
  }

  /** The claims of the bearer token in an Authorization header; a 401 when it is missing, forged, expired or revoked. */
  async check(authorization: string): Promise<TokenClaims> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
    if (!m) throw unauthorized('missing bearer token')
    const claims = verifyToken(this.opts.secret, m[1]!)
    if (!claims) throw unauthorized('invalid token')
    const now = Date.now() / 1000
    if (claims.expiresAt <= now) throw unauthorized('token expired; get a new one before it expires (POST /users/:id/tokens)')
    // No token of ours lives longer than tokenTtl from its issue: one that claims to was not issued by this
    // service as configured (a leaked secret, or tokenTtl since shortened). A minute's grace for clocks.
    if (claims.expiresAt > now + this.opts.ttlSeconds + CLOCK_SKEW_SECONDS) throw unauthorized('invalid token')
    let current = this.generations.get(claims.userId)
    // Not seen here yet, or newer than what we know (a revocation we were not told of): ask the user's shard.
    if (current === undefined || claims.generation > current) {
      const stored = await tokenGeneration(this.data, claims.userId)
      if (stored === null) throw unauthorized('invalid token')
      this.generations.learn(claims.userId, stored)
      current = stored
    }
    if (claims.generation !== current) throw unauthorized('token revoked')
    return claims
  }

  /**
   * Revokes every token the user holds, as the holder of a token of generation `seen`; returns the one new token
   * of the next generation. The move is conditional on `seen` still being the user's generation, so of concurrent
   * revokes with one token exactly one wins; the others hold a token that revoke has just killed (401).
   */
  async revokeAll(userId: bigint, seen: number): Promise<{token: string; expiresAt: string}> {
    const generation = await bumpTokenGeneration(this.data, userId, seen)
    if (generation === null) throw unauthorized('token revoked')
    await this.generations.announce(userId, generation)
    return this.issue(userId, generation)
  }
}
