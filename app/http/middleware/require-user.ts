import {verifyToken} from '../../auth/token.js'
import {unauthorized} from '../errors.js'
import type {Ctx, Next} from '../types.js'

/** Writes need `Authorization: Bearer <token>`; the token's user becomes ctx.state.userId. 401 when missing or bad. */
export function requireUser(secret: string) {
  return async function requireUserMiddleware(ctx: Ctx, next: Next): Promise<void> {
    const header = ctx.get('authorization')
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (!m) throw unauthorized('missing bearer token')
    const userId = verifyToken(secret, m[1]!)
    if (userId === null) throw unauthorized('invalid token')
    ctx.state.userId = userId
    await next()
  }
}
