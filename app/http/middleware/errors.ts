import {STATUS_CODES} from 'node:http'

import {ZodError} from 'zod'

import {isUserError} from '../../../src/errors.js'
import {ShardFrozenError} from '../../data/map-cache.js'
import {ApiError} from '../errors.js'
import type {Ctx, Next} from '../types.js'

/**
 * Every error becomes JSON `{error: {message}}`. Bad input is a 4xx (our ApiError, a zod issue, a UserError
 * from an id parser, a body-parser error such as 413); a write held past the freeze bound is 503 with
 * Retry-After; anything else is a 500 whose details go to the log, not to the client.
 */
export function errorHandler(freezeRetryAfterSeconds: number) {
  return async function errorMiddleware(ctx: Ctx, next: Next): Promise<void> {
    try {
      await next()
    } catch (err) {
      const {status, message, headers} = describe(err, freezeRetryAfterSeconds)
      if (status >= 500 && !(err instanceof ShardFrozenError)) {
        ctx.state.log.error({err: errorForLog(err)}, 'request failed')
      }
      ctx.status = status
      for (const [k, v] of Object.entries(headers)) ctx.set(k, v)
      ctx.body = {error: {message}}
    }
  }
}

function describe(err: unknown, retryAfter: number): {status: number; message: string; headers: Record<string, string>} {
  if (err instanceof ApiError) return {status: err.status, message: err.message, headers: err.headers}
  if (err instanceof ZodError) return {status: 400, message: zodMessage(err), headers: {}}
  if (isUserError(err)) return {status: 400, message: err.message, headers: {}}
  if (err instanceof ShardFrozenError) return {status: 503, message: err.message, headers: {'Retry-After': String(retryAfter)}}
  // Errors from koa, co-body and http-errors carry a status and say whether the message may be shown.
  const e = err as {status?: unknown; statusCode?: unknown; expose?: unknown; message?: unknown}
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : 500
  if (status >= 400 && status < 500) {
    const message = e.expose === true && typeof e.message === 'string' ? e.message : (STATUS_CODES[status] ?? 'bad request')
    return {status, message, headers: {}}
  }
  return {status: 500, message: 'internal server error', headers: {}}
}

function zodMessage(err: ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : 'input'}: ${i.message.replace(/^Invalid input: /, '')}`)
    .join('; ')
}

function errorForLog(err: unknown): {message: string; stack?: string; code?: string} {
  if (err instanceof Error) {
    const code = (err as {code?: unknown}).code
    return {message: err.message, stack: err.stack, ...(typeof code === 'string' ? {code} : {})}
  }
  return {message: String(err)}
}
