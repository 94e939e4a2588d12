import type {Ctx, Next} from '../types.js'

/** One line per request when the response is done: method, path, status, time. No headers, no bodies. */
export async function accessLog(ctx: Ctx, next: Next): Promise<void> {
  const started = process.hrtime.bigint()
  try {
    await next()
  } finally {
    const ms = Number(process.hrtime.bigint() - started) / 1e6
    const status = ctx.status
    const line = {method: ctx.method, path: ctx.path, status, ms: Math.round(ms * 100) / 100}
    if (status >= 500) ctx.state.log.error(line, 'request')
    else ctx.state.log.info(line, 'request')
  }
}
