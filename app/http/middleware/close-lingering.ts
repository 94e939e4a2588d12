import {closeLingering} from '../lingering-close.js'
import type {Ctx, Next} from '../types.js'

/**
 * A response that closes its connection drains what the client still sends first, for a bounded time and size
 * (lingering-close.ts), so the client can read it. A 413 always closes: the client may still be sending the
 * body it refused, and nothing after it on that connection could be read as a request anyway.
 */
export async function closeAfterResponse(ctx: Ctx, next: Next): Promise<void> {
  await next()
  if (ctx.status === 413) ctx.set('Connection', 'close')
  if (/(^|,)\s*close\s*(,|$)/i.test(ctx.response.get('Connection'))) closeLingering(ctx.req)
}
