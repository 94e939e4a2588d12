import {STATUS_CODES} from 'node:http'

import type {Ctx, Next} from '../types.js'

/** Responses that ended with an error status and no body (unknown route, 405) still get the JSON error shape. */
export async function jsonFallback(ctx: Ctx, next: Next): Promise<void> {
  await next()
  if (ctx.body == null && ctx.status >= 400) {
    const status = ctx.status
    const message = status === 404 ? `no route for ${ctx.method} ${ctx.path}` : (STATUS_CODES[status] ?? 'error')
    ctx.body = {error: {message}}
    ctx.status = status
  }
}
