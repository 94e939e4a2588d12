import type {DataContext} from '../data/context.js'
import {bumpTokenGeneration, tokenGeneration} from '../data/users.js'
import {unauthorized} from '../http/errors.js'
import type {TokenGenerations} from './generations.js'
import {issueToken, verifyToken, type TokenClaims} from './token.js'

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
    if (claims.expiresAt * 1000 <= Date.now()) throw unauthorized('token expired; get a new one before it expires (POST /users/:id/tokens)')
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

  /** Revokes every token the user holds; returns the one new token of the next generation. */
  async revokeAll(userId: bigint): Promise<{token: string; expiresAt: string}> {
    const generation = await bumpTokenGeneration(this.data, userId)
    await this.generations.announce(userId, generation)
    return this.issue(userId, generation)
  }
}
