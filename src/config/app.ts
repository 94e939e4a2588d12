import {z} from 'zod'

import {UserError} from '../errors.js'
import {formatIssues, type LoadedConfig} from './load.js'
import type {ShardsSettings} from './schema.js'

/**
 * The `app` section of an environment in feedops.yml: the feed app's settings. src/config/schema.ts keeps it
 * an untyped record so that only the app (app/config.ts) and `config show` check it, both with this schema.
 * The secret may come from $FEEDOPS_APP_SECRET instead of the file.
 */

const byteSize = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+\s*(b|kb|mb)$/i, 'a size such as 16kb, 1mb or a number of bytes'),
])

const duration = z.union([
  z.number().int().positive(),
  z.string().regex(/^[1-9]\d*\s*(s|m|h|d)$/i, 'a duration such as 3600, 90s, 15m, 12h or 30d'),
])

export const appSectionSchema = z
  .object({
    port: z.number().int().min(0).max(65535).default(8080),
    host: z.string().min(1).default('127.0.0.1'),
    /** Photo URLs are `${cdnBase}/${s3Key}`. */
    cdnBase: z.url({protocol: /^https?$/}),
    /** HMAC key of the user tokens; $FEEDOPS_APP_SECRET wins over this. */
    secret: z.string().min(16, 'at least 16 characters').optional(),
    /** How long a write to a frozen logical shard is held before it fails with 503. */
    freezeWaitMs: z.number().int().min(0).max(60_000).default(2000),
    /** How long a user token is good for: seconds, or a number with s, m, h or d. */
    tokenTtl: duration.default('30d'),
    /** Largest request body accepted (413 above). */
    bodyLimit: byteSize.default('16kb'),
    /** A request must arrive whole (head and body) within this; 408 after it (a body shorter than its Content-Length). */
    requestTimeoutMs: z.number().int().min(1000).max(600_000).default(30_000),
    /** Fallback check of the catalog's map version when a pub/sub message is missed. */
    mapPollMs: z.number().int().min(50).max(10_000).default(500),
    /** After SIGTERM: keep serving (readyz 503) this long so the load balancer stops sending, then stop accepting. */
    drainDelayMs: z.number().int().min(0).max(60_000).default(0),
    /** In-flight requests get this long to finish after SIGTERM before the process gives up. */
    shutdownTimeoutMs: z.number().int().min(100).max(300_000).default(10_000),
    /** Seconds a user object lives in Memcached (it is also deleted on every change). */
    userCacheTtl: z.number().int().min(1).max(86_400).default(300),
    /** Largest pg pool per physical server. */
    poolMax: z.number().int().min(1).max(1000).default(10),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /**
     * Feed read strategy. `per-server` (one SQL per physical server) is the real one; `per-shard` (one SQL per
     * logical shard) exists only so the benchmark can measure the naive baseline.
     */
    feedStrategy: z.enum(['per-server', 'per-shard']).default('per-server'),
    /**
     * Plan the feed's per-server queries once per connection (named prepared statements). Turn off when the
     * shard server URLs go through PgBouncer older than 1.21 in transaction pooling mode, which cannot keep
     * prepared statements.
     */
    preparedStatements: z.boolean().default(true),
  })
  .strict()

export type AppSection = z.infer<typeof appSectionSchema>

/** The section validated, with its defaults; `where` is "FILE: environments.NAME". Throws a UserError naming each key. */
export function validateAppSection(raw: unknown, where: string): AppSection {
  const parsed = appSectionSchema.safeParse(raw)
  if (!parsed.success) {
    throw new UserError(`${where}.app is invalid: ${formatIssues(parsed.error.issues)}`, {fix: 'Fix the keys named above.'})
  }
  return parsed.data
}

export interface AppSettings extends Omit<AppSection, 'secret' | 'bodyLimit' | 'tokenTtl'> {
  secret: string
  bodyLimitBytes: number
  tokenTtlSeconds: number
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
  const {secret: fileSecret, bodyLimit, tokenTtl, ...rest} = validateAppSection(raw, where)
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
  return {...rest, secret, bodyLimitBytes: parseBytes(bodyLimit), tokenTtlSeconds: parseSeconds(tokenTtl)}
}

export function parseSeconds(duration: number | string): number {
  if (typeof duration === 'number') return duration
  const m = /^(\d+)\s*(s|m|h|d)$/i.exec(duration)
  if (!m) throw new RangeError(`not a duration: ${duration}`)
  return Number(m[1]) * {s: 1, m: 60, h: 3600, d: 86_400}[m[2]!.toLowerCase() as 's' | 'm' | 'h' | 'd']
}

export function parseBytes(size: number | string): number {
  if (typeof size === 'number') return size
  const m = /^(\d+)\s*(b|kb|mb)$/i.exec(size)
  if (!m) throw new RangeError(`not a size: ${size}`)
  const unit = {b: 1, kb: 1024, mb: 1024 * 1024}[m[2]!.toLowerCase() as 'b' | 'kb' | 'mb']
  return Number(m[1]) * unit
}
