import type Router from '@koa/router'

import {ApiError} from '../errors.js'
import type {AppState, Ctx, Next} from '../types.js'

/**
 * After the routes: a path some route serves, asked with a method none of its routes takes, is a 405 whose
 * Allow names the methods that path takes (OPTIONS answers 204 with the same Allow). Any method, TRACE,
 * PROPFIND or one the router never heard of alike: the client asked for something this resource does not do,
 * which is its error, never the server's 501. A path no route serves stays a 404, whatever the method.
 * (Methods Node's parser does not know at all are refused before the app, as a 400: app/http/node-answers.ts.)
 */
export function allowedMethods(router: Router<AppState>) {
  return async function allowedMethodsMiddleware(ctx: Ctx, next: Next): Promise<void> {
    await next()
    if (ctx.status !== 404 || ctx.body != null) return
    const allowed = methodsOf(router, ctx.path)
    if (allowed.length === 0) return
    const allow = allowed.join(', ')
    if (ctx.method !== 'OPTIONS') throw new ApiError(405, `${ctx.method} is not allowed on ${ctx.path} (it allows ${allow})`, {Allow: allow})
    ctx.set('Allow', allow)
    ctx.status = 204
  }
}

function methodsOf(router: Router<AppState>, path: string): string[] {
  const methods = new Set<string>()
  for (const layer of router.stack) {
    if (layer.methods.length > 0 && layer.match(path)) for (const m of layer.methods) methods.add(m)
  }
  if (methods.size > 0) methods.add('OPTIONS')
  return [...methods]
}
