import Router from '@koa/router'
import type {Redis} from 'ioredis'

import type {ServerPools} from '../../src/shards/pools.js'
import type {ShardMapCache} from '../data/map-cache.js'
import type {Lifecycle} from '../http/middleware/draining.js'
import type {AppState} from '../http/types.js'

const CHECK_TIMEOUT_MS = 1000

async function check(what: () => Promise<unknown>): Promise<string> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      what(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS)
      }),
    ])
    return 'ok'
  } catch (err) {
    return (err as Error).message || 'failed'
  } finally {
    clearTimeout(timer)
  }
}

/** The release this process runs (from the release's manifest.json; `dev` when run from the source tree). */
export interface ReleaseInfo {
  id: string
}

/**
 * Both answers carry the release id and the pid, so a deploy's health gate can tell the new process from an
 * old one still running.
 *
 * /healthz: the process answers. /readyz: this instance can serve — not draining, the shard map loaded, and
 * the catalog, every physical server the map uses, and Redis answer (checked in parallel, 1 s each).
 */
export function healthRoutes(deps: {
  pools: ServerPools
  maps: ShardMapCache
  redis: Redis
  lifecycle: Lifecycle
  release: ReleaseInfo
}): Router<AppState> {
  const router = new Router<AppState>()
  const release = deps.release.id
  const pid = process.pid

  router.get('/healthz', (ctx) => {
    ctx.body = {ok: true, release, pid}
  })

  router.get('/readyz', async (ctx) => {
    if (deps.lifecycle.draining) {
      ctx.status = 503
      ctx.body = {ready: false, draining: deps.lifecycle.draining, release, pid}
      return
    }
    const servers = deps.maps.loaded ? deps.maps.serversInUse() : []
    const [catalog, redis, ...serverChecks] = await Promise.all([
      check(() => deps.pools.catalog.query('SELECT 1')),
      check(() => deps.redis.ping()),
      ...servers.map((s) => check(() => deps.pools.pool(s).query('SELECT 1'))),
    ])
    const checks = {
      map: deps.maps.loaded ? 'ok' : 'not loaded',
      catalog,
      redis,
      servers: Object.fromEntries(servers.map((s, i) => [s, serverChecks[i]!])),
    }
    const ready = [checks.map, catalog, redis, ...serverChecks].every((c) => c === 'ok')
    ctx.status = ready ? 200 : 503
    ctx.body = {ready, draining: false, release, pid, mapVersion: deps.maps.version, checks}
  })

  return router
}
