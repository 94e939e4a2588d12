import {bodyParser} from '@koa/bodyparser'

import {badRequest} from '../errors.js'
import type {Ctx, Next} from '../types.js'

/**
 * Reads a JSON body (gzip, deflate or br allowed), at most maxBytes once inflated. Used per route, after the
 * token check on writes, so a body nobody is allowed to send is never read or inflated. A body that does not
 * decompress is a 400 (zlib's errors carry no HTTP status). Content-coding names are case-insensitive
 * (RFC 9110 8.4.1), and x-gzip is gzip (RFC 9110 8.4.1.3); the parser below knows only the lower-case names.
 */
export type JsonBody = ReturnType<typeof jsonBody>

export function jsonBody(maxBytes: number) {
  const parse = bodyParser({enableTypes: ['json'], jsonLimit: maxBytes})
  return async function jsonBodyMiddleware(ctx: Ctx, next: Next): Promise<void> {
    const given = ctx.req.headers['content-encoding']
    if (given !== undefined) ctx.req.headers['content-encoding'] = codingName(given)
    try {
      await parse(ctx, async () => undefined)
    } catch (err) {
      const encoding = ctx.get('content-encoding').toLowerCase()
      if (encoding && encoding !== 'identity' && typeof (err as {status?: unknown}).status !== 'number') {
        throw badRequest(`the request body does not decompress as Content-Encoding ${encoding}`)
      }
      throw err
    }
    await next()
  }
}

function codingName(header: string): string {
  const name = header.trim().toLowerCase()
  return name === 'x-gzip' ? 'gzip' : name
}
