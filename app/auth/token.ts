import {createHmac, timingSafeEqual} from 'node:crypto'

/**
 * User tokens: `<userId>.<base64url HMAC-SHA256(secret, "feedops-user:<userId>")>`. Issued when a user is
 * created; a write must carry the token of the user it acts for. Verification recomputes the MAC and compares
 * it in constant time.
 */
const TOKEN = /^([1-9]\d{0,19})\.([A-Za-z0-9_-]{43})$/

function mac(secret: string, userId: bigint): Buffer {
  return createHmac('sha256', secret).update(`feedops-user:${userId}`).digest()
}

export function issueToken(secret: string, userId: bigint): string {
  return `${userId}.${mac(secret, userId).toString('base64url')}`
}

/** The user id the token was issued for, or null when it is malformed or not signed with this secret. */
export function verifyToken(secret: string, token: string): bigint | null {
  const m = TOKEN.exec(token)
  if (!m) return null
  const userId = BigInt(m[1]!)
  if (userId >= 1n << 63n) return null
  const given = Buffer.from(m[2]!, 'base64url')
  const expected = mac(secret, userId)
  if (given.length !== expected.length) return null
  return timingSafeEqual(given, expected) ? userId : null
}
