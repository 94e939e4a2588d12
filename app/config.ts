import {validateAppSection, type AppSection} from '../src/config/app.js'
import type {LoadedConfig} from '../src/config/load.js'
import type {ShardsSettings} from '../src/config/schema.js'
import {UserError} from '../src/errors.js'

export type {AppSection}

export interface AppSettings extends Omit<AppSection, 'secret' | 'bodyLimit'> {
  secret: string
  bodyLimitBytes: number
}

/** Everything the app needs from one environment of feedops.yml, validated; throws UserError naming the key. */
export interface AppConfig {
  file: string
  environment: string
  app: AppSettings
  shards: ShardsSettings
  redisUrl: string
  memcachedServers: string[]
}

export function appConfigFrom(loaded: LoadedConfig, envVars: NodeJS.ProcessEnv = process.env): AppConfig {
  const where = `${loaded.file}: environments.${loaded.environment}`
  const {shards, redis, memcached} = loaded.env
  const missing = [!shards && 'shards', !redis && 'redis', !memcached && 'memcached'].filter(Boolean)
  if (missing.length > 0 || !shards || !redis || !memcached) {
    throw new UserError(`${where} has no ${missing.join(', ')} section; the feed app needs shards, redis and memcached.`, {
      fix: 'Add the missing sections (`feedops lab up` writes them for the lab).',
    })
  }
  return {
    file: loaded.file,
    environment: loaded.environment,
    app: parseAppSection(loaded.env.app ?? {}, where, envVars),
    shards,
    redisUrl: redis.url,
    memcachedServers: memcached.servers,
  }
}

export function parseAppSection(raw: unknown, where = 'app', envVars: NodeJS.ProcessEnv = process.env): AppSettings {
  const {secret: fileSecret, bodyLimit, ...rest} = validateAppSection(raw, where)
  const secret = envVars.FEEDOPS_APP_SECRET || fileSecret
  if (!secret) {
    throw new UserError(`${where}.app has no secret and $FEEDOPS_APP_SECRET is not set.`, {
      fix: 'Set $FEEDOPS_APP_SECRET (or app.secret in the config) to a random string of at least 16 characters.',
    })
  }
  if (secret.length < 16) {
    // Never echo the value. The file's secret was checked by the schema, so this one is the environment's.
    throw new UserError('$FEEDOPS_APP_SECRET is shorter than 16 characters.', {fix: 'Use a longer random secret.'})
  }
  return {...rest, secret, bodyLimitBytes: parseBytes(bodyLimit)}
}

export function parseBytes(size: number | string): number {
  if (typeof size === 'number') return size
  const m = /^(\d+)\s*(b|kb|mb)$/i.exec(size)
  if (!m) throw new RangeError(`not a size: ${size}`)
  const unit = {b: 1, kb: 1024, mb: 1024 * 1024}[m[2]!.toLowerCase() as 'b' | 'kb' | 'mb']
  return Number(m[1]) * unit
}
