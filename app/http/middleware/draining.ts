import type {Ctx, Next} from '../types.js'

export interface Lifecycle {
  /** Set on SIGTERM: readyz says 503 and keep-alive connections are closed after their current response. */
  draining: boolean
  /** Requests being handled now; shutdown waits for 0 (a client that hung up still has its handler running). */
  inFlight: number
}

export function newLifecycle(): Lifecycle {
  return {draining: false, inFlight: 0}
}

export function trackInFlight(lifecycle: Lifecycle) {
  return async function inFlightMiddleware(_ctx: Ctx, next: Next): Promise<void> {
    lifecycle.inFlight++
    try {
      await next()
    } finally {
      lifecycle.inFlight--
    }
  }
}

export function closeWhenDraining(lifecycle: Lifecycle) {
  return async function drainingMiddleware(ctx: Ctx, next: Next): Promise<void> {
    await next()
    if (lifecycle.draining) ctx.set('Connection', 'close')
  }
}
