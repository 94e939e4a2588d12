import Router from '@koa/router'

import type {DataContext} from '../data/context.js'
import {readFeed} from '../data/feed.js'
import {feedParams, feedQuery} from '../http/schemas.js'
import type {AppState} from '../http/types.js'

export function feedRoutes(data: DataContext): Router<AppState> {
  const router = new Router<AppState>()
  router.get('/feed/:userId', async (ctx) => {
    const {userId} = feedParams.parse(ctx.params)
    const {limit, before} = feedQuery.parse(ctx.query)
    ctx.body = await readFeed(data, userId, limit, before)
  })
  return router
}
