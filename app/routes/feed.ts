import Router from '@koa/router'

import type {DataContext} from '../data/context.js'
import {readFeed} from '../data/feed.js'
import {SingleFlight} from '../data/single-flight.js'
import {getUser} from '../data/users.js'
import {feedParams, feedQuery} from '../http/schemas.js'
import type {AppState} from '../http/types.js'

export function feedRoutes(data: DataContext): Router<AppState> {
  const router = new Router<AppState>()
  // Identical reads in flight at once share one read and one serialized body.
  const reads = new SingleFlight<string>()
  router.get('/feed/:userId', async (ctx) => {
    const {userId} = feedParams.parse(ctx.params)
    const {limit, before} = feedQuery.parse(ctx.query)
    const key = `${userId}:${limit}:${before ?? ''}`
    ctx.type = 'application/json'
    ctx.body = await reads.run(key, async () => {
      const page = await readFeed(data, userId, limit, before)
      // An empty feed of a user who does not exist is a 404, as /users/:id is (only an empty page pays the check).
      if (page.items.length === 0) await getUser(data, userId)
      return JSON.stringify(page)
    })
  })
  return router
}
