import Router from '@koa/router'

import type {Auth} from '../auth/auth.js'
import type {DataContext} from '../data/context.js'
import {createUser, follow, getUser, getUserByName, unfollow} from '../data/users.js'
import {actingAs} from '../http/acting-as.js'
import {requireUser} from '../http/middleware/require-user.js'
import {createUserBody, followParams, userParams, usernameParams} from '../http/schemas.js'
import type {JsonBody} from '../http/middleware/json-body.js'
import type {AppState} from '../http/types.js'

export function userRoutes(data: DataContext, auth: Auth, body: JsonBody): Router<AppState> {
  const router = new Router<AppState>()
  const signedIn = requireUser(auth)

  router.post('/users', body, async (ctx) => {
    const input = createUserBody.parse(ctx.request.body)
    const user = await createUser(data, input)
    auth.generations.learn(BigInt(user.id), 0)
    ctx.status = 201
    ctx.body = {user, token: auth.issue(BigInt(user.id), 0).token}
  })

  router.get('/users/by-name/:username', async (ctx) => {
    const {username} = usernameParams.parse(ctx.params)
    ctx.body = {user: await getUserByName(data, username)}
  })

  router.get('/users/:id', async (ctx) => {
    const {id} = userParams.parse(ctx.params)
    ctx.body = {user: await getUser(data, id)}
  })

  router.put('/users/:id/following/:targetId', signedIn, async (ctx) => {
    const {id, targetId} = followParams.parse(ctx.params)
    actingAs(ctx.state, id)
    const added = await follow(data, id, targetId)
    ctx.body = {userId: id.toString(), targetId: targetId.toString(), following: true, changed: added}
  })

  router.delete('/users/:id/following/:targetId', signedIn, async (ctx) => {
    const {id, targetId} = followParams.parse(ctx.params)
    actingAs(ctx.state, id)
    const removed = await unfollow(data, id, targetId)
    ctx.body = {userId: id.toString(), targetId: targetId.toString(), following: false, changed: removed}
  })

  return router
}
