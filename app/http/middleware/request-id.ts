import {randomUUID} from 'node:crypto'

import type {Logger} from '../../logger.js'
import type {Ctx, Next} from '../types.js'

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** Takes the caller's x-request-id when it is a sane token (else makes one), echoes it, and binds a child logger. */
export function requestId(logger: Logger) {
  return async function requestIdMiddleware(ctx: Ctx, next: Next): Promise<void> {
    const given = ctx.get('x-request-id')
    const id = SAFE_ID.test(given) ? given : randomUUID()
    ctx.state.requestId = id
    ctx.state.log = logger.child({reqId: id})
    ctx.set('X-Request-Id', id)
    await next()
  }
}
