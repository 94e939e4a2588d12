import Router from '@koa/router'

import {issueToken} from '../auth/token.js'
import type {DataContext} from '../data/context.js'
import {createUser, follow, getUser, unfollow} from '../data/users.js'
import {forbidden} from '../http/errors.js'
import {requireUser} from '../http/middleware/require-user.js'
import {createUserBody, followParams, userParams} from '../http/schemas.js'
import type {AppState} from '../http/types.js'

export function userRoutes(data: DataContext, secret: string): Router<AppState> {
  const router = new Router<AppState>()
  const auth = requireUser(secret)

  /** The acting user (from the token) must be the :id of the path. */
  const actingAs = (state: AppState, id: bigint) => {
    if (state.userId !== id) throw forbidden(`this token may not act for user ${id}`)
  }

  router.post('/users', async (ctx) => {
    const input = createUserBody.parse(ctx.request.body)
    const user = await createUser(data, input)
    ctx.status = 201
    ctx.body = {user, token: issueToken(secret, BigInt(user.id))}
  })

  router.get('/users/:id', async (ctx) => {
    const {id} = userParams.parse(ctx.params)
    ctx.body = {user: await getUser(data, id)}
  })

  router.put('/users/:id/following/:targetId', auth, async (ctx) => {
    const {id, targetId} = followParams.parse(ctx.params)
    actingAs(ctx.state, id)
    const added = await follow(data, id, targetId)
    ctx.body = {userId: id.toString(), targetId: targetId.toString(), following: true, changed: added}
  })

  router.delete('/users/:id/following/:targetId', auth, async (ctx) => {
    const {id, targetId} = followParams.parse(ctx.params)
    actingAs(ctx.state, id)
    const removed = await unfollow(data, id, targetId)
    ctx.body = {userId: id.toString(), targetId: targetId.toString(), following: false, changed: removed}
  })

  return router
}
