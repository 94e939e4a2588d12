import Router from '@koa/router'

import type {Auth} from '../auth/auth.js'
import {actingAs} from '../http/acting-as.js'
import {requireUser} from '../http/middleware/require-user.js'
import {userParams} from '../http/schemas.js'
import type {AppState} from '../http/types.js'

/**
 * POST /users/:id/tokens: a fresh token (a new expiry) for the holder of a valid one.
 * DELETE /users/:id/tokens: revokes every token of the user, this one included; the answer carries the one new
 * token (a user has no other way to get one). Of concurrent revokes with one token, one wins; the others get 401.
 */
export function tokenRoutes(auth: Auth): Router<AppState> {
  const router = new Router<AppState>()
  const signedIn = requireUser(auth)

  router.post('/users/:id/tokens', signedIn, (ctx) => {
    const {id} = userParams.parse(ctx.params)
    actingAs(ctx.state, id)
    ctx.status = 201
    ctx.body = {userId: id.toString(), ...auth.issue(id, ctx.state.tokenGeneration!)}
  })

  router.delete('/users/:id/tokens', signedIn, async (ctx) => {
    const {id} = userParams.parse(ctx.params)
    actingAs(ctx.state, id)
    ctx.body = {userId: id.toString(), revoked: true, ...(await auth.revokeAll(id, ctx.state.tokenGeneration!))}
  })

  return router
}
