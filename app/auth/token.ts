import {createHmac, timingSafeEqual} from 'node:crypto'

/**
 * User tokens: `<userId>.<generation>.<expiresAt>.<base64url HMAC-SHA256(secret, "feedops-user:v2:…")>`.
 * expiresAt is in seconds since 1970; generation is the user's token generation when it was issued (bumping it
 * revokes every earlier token, see generations.ts). A write must carry a valid token of the user it acts for.
 *
 * Verification recomputes the whole token from the claims it parsed and compares the text in constant time.
 * Comparing the decoded MAC bytes instead would accept four spellings of each token: the last base64url
 * character of a 32-byte MAC carries two unused bits.
 */
export interface TokenClaims {
  userId: bigint
  generation: number
  /** Seconds since 1970. */
  expiresAt: number
}

const TOKEN = /^([1-9]\d{0,18})\.(0|[1-9]\d{0,9})\.([1-9]\d{0,11})\.[A-Za-z0-9_-]{43}$/
const MAX_USER_ID = (1n << 63n) - 1n

function mac(secret: string, c: TokenClaims): string {
  return createHmac('sha256', secret).update(`feedops-user:v2:${c.userId}:${c.generation}:${c.expiresAt}`).digest('base64url')
}

export function issueToken(secret: string, claims: TokenClaims): string {
  return `${claims.userId}.${claims.generation}.${claims.expiresAt}.${mac(secret, claims)}`
}

/** The claims of a token signed with this secret, or null when it is malformed or not (exactly) ours. Expiry is the caller's. */
export function verifyToken(secret: string, token: string): TokenClaims | null {
  const m = TOKEN.exec(token)
  if (!m) return null
  const claims = {userId: BigInt(m[1]!), generation: Number(m[2]), expiresAt: Number(m[3])}
  if (claims.userId > MAX_USER_ID || claims.generation > 0x7fffffff) return null
  const given = Buffer.from(token)
  const expected = Buffer.from(issueToken(secret, claims))
  return given.length === expected.length && timingSafeEqual(given, expected) ? claims : null
}
