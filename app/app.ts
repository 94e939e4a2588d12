import Router from '@koa/router'
import type {Redis} from 'ioredis'
import Koa from 'koa'
import type memjs from 'memjs'

import type {PhotoOwnerMap} from '../src/shards/photo-map/map.js'
import type {ServerPools} from '../src/shards/pools.js'
import {Auth} from './auth/auth.js'
import type {TokenGenerations} from './auth/generations.js'
import type {AppSettings} from './config.js'
import type {DataContext} from './data/context.js'
import type {ShardMapCache} from './data/map-cache.js'
import {UserCache} from './data/user-cache.js'
import {accessLog} from './http/middleware/access-log.js'
import {allowedMethods} from './http/middleware/allowed-methods.js'
import {bodyLimit} from './http/middleware/body-limit.js'
import {closeAfterResponse} from './http/middleware/close-lingering.js'
import {closeWhenDraining, newLifecycle, trackInFlight, type Lifecycle} from './http/middleware/draining.js'
import {errorHandler} from './http/middleware/errors.js'
import {jsonBody} from './http/middleware/json-body.js'
import {jsonFallback} from './http/middleware/json-fallback.js'
import {requestId} from './http/middleware/request-id.js'
import {requireHost} from './http/middleware/require-host.js'
import type {AppState} from './http/types.js'
import type {Logger} from './logger.js'
import {feedRoutes} from './routes/feed.js'
import {healthRoutes, type ReleaseInfo} from './routes/health.js'
import {photoRoutes} from './routes/photos.js'
import {tokenRoutes} from './routes/tokens.js'
import {userRoutes} from './routes/users.js'

/** Everything the app talks to, connected by the caller (app/deps.ts in production, the tests in-process). */
export interface AppDeps {
  settings: AppSettings
  pools: ServerPools
  maps: ShardMapCache
  redis: Redis
  memcached: memjs.Client
  photoMap: PhotoOwnerMap
  /** Users' token generations seen by this process, told of revocations over Redis. */
  tokenGenerations: TokenGenerations
  logger: Logger
  /** Shared with the process's signal handling; created here when not given. */
  lifecycle?: Lifecycle
  /** What /healthz and /readyz report (default: release `dev`). */
  release?: ReleaseInfo
}

export interface FeedApp extends Koa<AppState> {
  lifecycle: Lifecycle
  /** For the server's own answers (app/http/node-answers.ts). */
  logger: Logger
  /** What app/server.ts sets on the HTTP server. */
  http: {requestTimeoutMs: number; bodyLimitBytes: number}
}

export function createApp(deps: AppDeps): FeedApp {
  const {settings, logger} = deps
  const lifecycle = deps.lifecycle ?? newLifecycle()
  const data: DataContext = {
    pools: deps.pools,
    maps: deps.maps,
    redis: deps.redis,
    photoMap: deps.photoMap,
    users: new UserCache(deps.memcached, {ttlSeconds: settings.userCacheTtl, log: logger}),
    log: logger,
    freezeWaitMs: settings.freezeWaitMs,
    cdnBase: settings.cdnBase,
    feedStrategy: settings.feedStrategy,
    preparedStatements: settings.preparedStatements,
  }

  const auth = new Auth(data, {secret: settings.secret, ttlSeconds: settings.tokenTtlSeconds}, deps.tokenGenerations)
  // Bodies are read per route (JSON only, same limit once inflated), after the token check on writes.
  const body = jsonBody(settings.bodyLimitBytes)

  const api = new Router<AppState>()
  for (const r of [
    healthRoutes({
      pools: deps.pools,
      maps: deps.maps,
      redis: deps.redis,
      lifecycle,
      release: deps.release ?? {id: 'dev'},
    }),
    userRoutes(data, auth, body),
    tokenRoutes(auth),
    photoRoutes(data, auth, body),
    feedRoutes(data),
  ]) {
    api.use(r.routes())
  }

  const app = new Koa<AppState>() as FeedApp
  app.lifecycle = lifecycle
  app.logger = logger
  app.http = {requestTimeoutMs: settings.requestTimeoutMs, bodyLimitBytes: settings.bodyLimitBytes}
  // Errors are answered and logged by errorHandler; this only sees socket-level failures.
  app.on('error', (err: Error) => logger.warn({err: err.message}, 'http error outside a handler'))

  // The request pipeline, outermost first.
  app
    .use(trackInFlight(lifecycle)) // counted until the handler is done, even if the client hung up
    .use(requestId(logger)) // x-request-id in/out, per-request child logger
    .use(accessLog) // one log line per request, with the final status
    .use(closeAfterResponse) // a 413 closes; a closing answer drains what the client still sends, so it reads it
    .use(errorHandler(Math.max(1, Math.ceil(settings.freezeWaitMs / 1000)))) // any error → JSON {error: {message}}
    .use(requireHost) // HTTP/1.1 without Host → 400
    .use(closeWhenDraining(lifecycle)) // after SIGTERM: Connection: close
    .use(jsonFallback) // bodiless 404 → JSON
    .use(bodyLimit(settings.bodyLimitBytes)) // 413 on a declared Content-Length over the limit
    .use(api.routes()) // the endpoints (auth, body parsing and validation are per route)
    .use(allowedMethods(api)) // 405 with Allow for a known path and any method it does not take
  return app
}
