/**
 * Shared set-up of the app tests: a test lab (2 Postgres servers, Redis, Memcached), a config file with an
 * `app` section and 16 logical shards, `shards init`, and the app running in-process on 127.0.0.1:0.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import type http from 'node:http'
import path from 'node:path'
import {Writable} from 'node:stream'

import {parse, stringify} from 'yaml'

import {createApp, type AppDeps, type FeedApp} from '../../app/app.js'
import {appConfigFrom, type AppConfig, type AppSection} from '../../app/config.js'
import {closeDeps, connectDeps} from '../../app/deps.js'
import {createLogger} from '../../app/logger.js'
import {listen} from '../../app/server.js'
import {loadConfig} from '../../src/config/load.js'
import {initShards} from '../../src/shards/init.js'
import {ServerPools} from '../../src/shards/pools.js'
import {startTestLab, type TestLab, type TestLabOptions} from '../support/lab.js'

export const SECRET = 'test-secret-0123456789-abcdefghij-do-not-log'
export const CDN = 'https://cdn.test.example/p'
export const LOGICAL = 16

/** Writes <lab>/app.yml: the lab's config with 16 (or `logical`) logical shards and the given app section. */
export function writeAppConfig(lab: TestLab, app: Record<string, unknown>, file = 'app.yml', logical = LOGICAL): string {
  const doc = parse(readFileSync(lab.configFile, 'utf8')) as {environments: Record<string, Record<string, unknown>>}
  const env = doc.environments.lab!
  ;(env.shards as {logical: number}).logical = logical
  env.app = app
  const out = path.join(lab.dir, file)
  writeFileSync(out, stringify(doc))
  return out
}

export async function initLabShards(config: AppConfig): Promise<void> {
  const pools = new ServerPools(config.shards)
  try {
    const r = await initShards(pools, config.shards)
    if (!r.complete) throw new Error(`shards init incomplete: ${JSON.stringify(r.servers)}`)
  } finally {
    await pools.end()
  }
}

export interface LogCapture {
  lines: string[]
  text(): string
}

export function captureLogs(): {stream: Writable; logs: LogCapture} {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean))
      cb()
    },
  })
  return {stream, logs: {lines, text: () => lines.join('\n')}}
}

export interface RunningApp {
  app: FeedApp
  deps: AppDeps
  server: http.Server
  url: string
  stop(): Promise<void>
}

/** The app in-process, on 127.0.0.1 and a free port unless `at` says (an app host's address, for a lab's NGINX). */
export async function startApp(
  config: AppConfig,
  logs: Writable,
  override: Partial<AppConfig['app']> = {},
  at: {host: string; port: number} = {host: '127.0.0.1', port: 0},
): Promise<RunningApp> {
  const logger = createLogger({level: 'debug'}, logs)
  const deps = await connectDeps({...config, app: {...config.app, ...override}}, logger)
  const app = createApp(deps)
  const {server, port} = await listen(app, at.host, at.port)
  return {
    app,
    deps,
    server,
    url: `http://${at.host}:${port}`,
    stop: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await closeDeps(deps)
    },
  }
}

export interface AppLab {
  lab: TestLab
  configFile: string
  config: AppConfig
}

/** A lab with the shards created, and the app's config (secret in the file unless told otherwise). */
export async function startAppLab(
  app: Partial<AppSection> = {},
  envVars: NodeJS.ProcessEnv = {},
  more: Pick<TestLabOptions, 'hosts' | 'nginx'> = {},
): Promise<AppLab> {
  const lab = await startTestLab({postgres: 2, redis: true, memcached: true, ...more})
  try {
    const configFile = writeAppConfig(lab, {cdnBase: CDN, secret: SECRET, bodyLimit: '4kb', ...app})
    const config = appConfigFrom(loadConfig({flag: configFile}), envVars)
    await initLabShards(config)
    return {lab, configFile, config}
  } catch (err) {
    await lab.stop()
    throw err
  }
}

/** A small JSON HTTP client. */
export async function call(
  base: string,
  method: string,
  url: string,
  opts: {body?: unknown; token?: string; headers?: Record<string, string>; raw?: string} = {},
): Promise<{status: number; body: any; headers: Headers; ms: number}> {
  const headers: Record<string, string> = {...opts.headers}
  if (opts.token) headers.authorization = `Bearer ${opts.token}`
  let body: string | undefined
  if (opts.raw !== undefined) body = opts.raw
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body)
    headers['content-type'] ??= 'application/json'
  }
  const started = performance.now()
  const res = await fetch(base + url, {method, headers, body})
  const text = await res.text()
  const ms = performance.now() - started
  let parsed: unknown = text
  try {
    parsed = text ? JSON.parse(text) : undefined
  } catch {
    // not JSON; the test will say so
  }
  return {status: res.status, body: parsed, headers: res.headers, ms}
}
