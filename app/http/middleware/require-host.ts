import {badRequest} from '../errors.js'
import type {Ctx, Next} from '../types.js'

/**
 * An HTTP/1.1 request must carry Host (RFC 9112 3.2). Node's own check answers a bare 400 with no body, so the
 * server turns it off (requireHostHeader: false, app/server.ts) and this answers in the app's JSON shape.
 */
export async function requireHost(ctx: Ctx, next: Next): Promise<void> {
  if (ctx.req.httpVersionMajor === 1 && ctx.req.httpVersionMinor >= 1 && ctx.req.headers.host === undefined) {
    throw badRequest('an HTTP/1.1 request needs a Host header')
  }
  await next()
}
