import type {Auth} from '../../auth/auth.js'
import type {Ctx, Next} from '../types.js'

/** Writes need `Authorization: Bearer <token>`; the token's user becomes ctx.state.userId. 401 when missing or bad. */
export function requireUser(auth: Auth) {
  return async function requireUserMiddleware(ctx: Ctx, next: Next): Promise<void> {
    const claims = await auth.check(ctx.get('authorization'))
    ctx.state.userId = claims.userId
    ctx.state.tokenGeneration = claims.generation
    await next()
  }
}
