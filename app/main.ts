#!/usr/bin/env node
/**
 * The feed app's entry point: `node dist/app/main.js --config FILE [--env NAME] [--host H --port P]`.
 * Reads env.shards / env.redis / env.memcached and the `app` section of feedops.yml, connects, serves, and on
 * SIGTERM drains and exits 0.
 */
import {closeSync, readFileSync, writeSync} from 'node:fs'
import {parseArgs} from 'node:util'

import {loadConfig} from '../src/config/load.js'
import {formatError, UserError} from '../src/errors.js'
import {createApp} from './app.js'
import {appConfigFrom} from './config.js'
import {closeDeps, connectDeps} from './deps.js'
import {createLogger} from './logger.js'
import type {ReleaseInfo} from './routes/health.js'
import {ADDRESS_IN_USE_EXIT, drainAndClose, listen} from './server.js'

/** A deployed release has manifest.json beside its bundle (src/deploy/bundle.ts); the source tree has none. */
function releaseInfo(): ReleaseInfo {
  try {
    const m = JSON.parse(readFileSync(new URL('./manifest.json', import.meta.url), 'utf8')) as {id: string}
    return {id: m.id}
  } catch {
    return {id: 'dev'}
  }
}

/**
 * Tells the process manager that started this process (src/deploy/pm.ts) that it listens and its
 * dependencies answered: one line on the file descriptor named by $FEEDOPS_READY_FD, then closed.
 */
function notifyReady(): void {
  const fd = Number(process.env.FEEDOPS_READY_FD)
  if (!Number.isInteger(fd) || fd < 3) return
  try {
    writeSync(fd, `ready ${process.pid}\n`)
    closeSync(fd)
  } catch {
    // The manager gave up waiting (and stops this process); nothing to tell.
  }
}

const USAGE = 'Usage: node dist/app/main.js --config FILE [--env NAME] [--host 127.0.0.1] [--port 8080] [--debug]'

async function main(): Promise<number | undefined> {
  const {values} = parseCommandLine()
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const portFlag = values.port === undefined ? undefined : Number(values.port)
  if (portFlag !== undefined && (!Number.isInteger(portFlag) || portFlag < 0 || portFlag > 65535)) {
    throw new UserError(`--port ${values.port} is not a port number.`, {fix: USAGE})
  }
  const config = appConfigFrom(loadConfig({flag: values.config, environment: values.env}))
  if (values.host) config.app.host = values.host
  if (portFlag !== undefined) config.app.port = portFlag
  const logger = createLogger({level: config.app.logLevel})
  const release = releaseInfo()
  const deps = await connectDeps(config, logger)
  const app = createApp({...deps, release})
  const {server, port, connections} = await listen(app, config.app.host, config.app.port).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EADDRINUSE') throw err
    process.stderr.write(`${config.app.host}:${config.app.port} is in use by a process that does not share it (no SO_REUSEPORT)\n`)
    process.exit(ADDRESS_IN_USE_EXIT)
  })
  notifyReady()
  logger.info(
    {host: config.app.host, port, release: release.id, environment: config.environment, mapVersion: deps.maps.version, feedStrategy: config.app.feedStrategy},
    'listening',
  )

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({signal}, 'signal received')
    void drainAndClose({
      app,
      server,
      connections,
      logger,
      drainDelayMs: config.app.drainDelayMs,
      timeoutMs: config.app.shutdownTimeoutMs,
      close: () => closeDeps(deps),
    }).then((outcome) => logger.flush(() => process.exit(outcome === 'stopped' ? 0 : 1)))
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  return undefined
}

function parseCommandLine() {
  try {
    return parseArgs({
      options: {
        config: {type: 'string'},
        env: {type: 'string'},
        host: {type: 'string'},
        port: {type: 'string'},
        debug: {type: 'boolean'},
        help: {type: 'boolean', short: 'h'},
      },
      strict: true,
    })
  } catch (err) {
    throw new UserError(`${(err as Error).message.replace(/\.$/, '')}.`, {fix: USAGE, cause: err})
  }
}

// Start-up errors are printed as the CLI prints its own (src/errors.ts formatError).
main().then(
  (code) => {
    if (code !== undefined) process.exit(code)
  },
  (err: unknown) => {
    const report = formatError(err, {debug: process.argv.includes('--debug')})
    process.stderr.write(report.text)
    process.exit(report.exitCode)
  },
)
