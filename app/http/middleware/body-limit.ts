import {ApiError} from '../errors.js'
import type {Ctx, Next} from '../types.js'

/**
 * Refuses a body whose declared Content-Length is over the limit before reading a byte of it (413). A body sent
 * without a length (chunked) is cut at the same limit by the body parser.
 */
export function bodyLimit(maxBytes: number) {
  return async function bodyLimitMiddleware(ctx: Ctx, next: Next): Promise<void> {
    const declared = Number(ctx.get('content-length') || 0)
    if (declared > maxBytes) {
      ctx.set('Connection', 'close')
      throw new ApiError(413, `request body is larger than ${maxBytes} bytes`)
    }
    await next()
  }
}
