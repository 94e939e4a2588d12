import {Redis} from 'ioredis'
import memjs from 'memjs'

import {UserError} from '../src/errors.js'
import {PhotoOwnerMap} from '../src/shards/photo-map/map.js'
import {ServerPools} from '../src/shards/pools.js'
import type {AppDeps} from './app.js'
import {TokenGenerations} from './auth/generations.js'
import type {AppConfig} from './config.js'
import {ShardMapCache} from './data/map-cache.js'
import type {Logger} from './logger.js'

/** Connects to everything the config names and loads the shard map. Throws UserError when it cannot start. */
export async function connectDeps(config: AppConfig, logger: Logger): Promise<AppDeps> {
  const {app: settings} = config
  // Shard servers through their pooler (pooledUrl, e.g. PgBouncer) when the config names one.
  const servers = config.shards.servers.map((s) => ({...s, url: s.pooledUrl ?? s.url}))
  const pools = new ServerPools({...config.shards, servers}, {max: settings.poolMax, applicationName: 'feedops-app'})
  const redis = new Redis(config.redisUrl, {maxRetriesPerRequest: 2, enableOfflineQueue: true})
  redis.on('error', (err: Error) => logger.warn({err: err.message}, 'redis error'))
  const memcached = memjs.Client.create(config.memcachedServers.join(','), {
    timeout: 0.5,
    retries: 1,
    keepAlive: true,
    logger: {log: (...args: unknown[]) => logger.warn({detail: args.map(String).join(' ')}, 'memcached')},
  })
  const maps = new ShardMapCache(pools.catalog, {pollMs: settings.mapPollMs, log: logger, redis})
  const tokenGenerations = new TokenGenerations({redis, log: logger})
  const deps: AppDeps = {settings, pools, maps, redis, memcached, photoMap: new PhotoOwnerMap(redis), tokenGenerations, logger}
  try {
    // Side by side: each waits on its own connections, and every start is on a deploy's way.
    await Promise.all([maps.start(), tokenGenerations.start()])
  } catch (err) {
    await closeDeps(deps)
    throw new UserError(`Cannot read the shard map from the catalog: ${(err as Error).message}`, {
      fix: 'Check env.shards.catalog and that the catalog server is up.',
      cause: err,
    })
  }
  if (maps.logical === 0 || maps.current().shards.length === 0) {
    await closeDeps(deps)
    throw new UserError('The shard catalog has no logical shards.', {fix: 'Run `feedops shards init` first.'})
  }
  return deps
}

export async function closeDeps(deps: AppDeps): Promise<void> {
  await deps.maps.stop().catch(() => undefined)
  deps.tokenGenerations.stop()
  deps.memcached.close()
  await Promise.all([deps.pools.end().catch(() => undefined), deps.redis.quit().catch(() => deps.redis.disconnect())])
}
