import type {Ctx, Next} from '../types.js'

export interface Lifecycle {
  /** Set on SIGTERM: readyz says 503 and keep-alive connections are closed after their current response. */
  draining: boolean
}

export function closeWhenDraining(lifecycle: Lifecycle) {
  return async function drainingMiddleware(ctx: Ctx, next: Next): Promise<void> {
    await next()
    if (lifecycle.draining) ctx.set('Connection', 'close')
  }
}
