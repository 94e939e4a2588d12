import {Redis} from 'ioredis'

import type {EnvironmentConfig} from '../../config/schema.js'
import {UserError, errorText} from '../../errors.js'

/** host:port of a redis URL, without credentials (safe to print). */
function describeRedisUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || '6379'}`
  } catch {
    return '(unparsable URL)'
  }
}

/**
 * A connection to env.redis for the photo map. Throws a UserError (nothing touched yet) when the
 * environment has no redis section or the server does not answer; commands that write to Postgres
 * and Redis call this before writing anything.
 */
export async function connectRedis(env: Pick<EnvironmentConfig, 'redis'>, environment: string): Promise<Redis> {
  if (!env.redis) {
    throw new UserError(`Environment "${environment}" has no redis section; the photo→owner map lives in Redis.`, {
      fix: 'Add env.redis.url to the config (the lab config has it: `feedops lab up`).',
    })
  }
  const redis = new Redis(env.redis.url, {lazyConnect: true, connectTimeout: 5000, maxRetriesPerRequest: 2, retryStrategy: () => null})
  redis.on('error', () => undefined) // reported by the command that failed
  try {
    await redis.connect()
    await redis.ping()
  } catch (err) {
    redis.disconnect()
    throw new UserError(`Cannot reach Redis at ${describeRedisUrl(env.redis.url)}: ${errorText(err).replace(/\.+$/, "")}. Nothing was changed.`, {
      fix: 'Start Redis (`feedops lab up`) or fix env.redis.url in the config.',
    })
  }
  return redis
}
