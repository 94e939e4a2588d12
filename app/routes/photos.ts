import Router from '@koa/router'

import type {Auth} from '../auth/auth.js'
import type {DataContext} from '../data/context.js'
import {createPhoto, getPhoto, setLike} from '../data/photos.js'
import {requireUser} from '../http/middleware/require-user.js'
import {createPhotoBody, photoParams} from '../http/schemas.js'
import type {JsonBody} from '../http/middleware/json-body.js'
import type {AppState} from '../http/types.js'

export function photoRoutes(data: DataContext, auth: Auth, body: JsonBody): Router<AppState> {
  const router = new Router<AppState>()
  const signedIn = requireUser(auth)

  // The token is checked before the body is read.
  router.post('/photos', signedIn, body, async (ctx) => {
    const input = createPhotoBody.parse(ctx.request.body)
    ctx.status = 201
    ctx.body = {photo: await createPhoto(data, ctx.state.userId!, input)}
  })

  router.get('/photos/:id', async (ctx) => {
    const {id} = photoParams.parse(ctx.params)
    ctx.body = {photo: await getPhoto(data, id)}
  })

  for (const [method, liked] of [['put', true], ['delete', false]] as const) {
    router[method]('/photos/:id/likes', signedIn, async (ctx) => {
      const {id} = photoParams.parse(ctx.params)
      await setLike(data, id, ctx.state.userId!, liked)
      ctx.body = {photoId: id.toString(), userId: ctx.state.userId!.toString(), liked}
    })
  }

  return router
}
