import {pino, type DestinationStream, type Logger} from 'pino'

/**
 * Structured logs. Anything that could carry the app secret or a user token is redacted by path, so a log
 * call that passes a config object, a request's headers or a token by mistake still prints no secret.
 */
export const REDACT_PATHS = [
  'secret',
  '*.secret',
  '*.*.secret',
  'token',
  '*.token',
  'authorization',
  'headers.authorization',
  '*.headers.authorization',
  'headers.cookie',
  '*.headers.cookie',
]

export function createLogger(opts: {level?: string; name?: string} = {}, destination?: DestinationStream): Logger {
  return pino(
    {
      name: opts.name ?? 'feedops-app',
      level: opts.level ?? 'info',
      redact: {paths: REDACT_PATHS, censor: '[Redacted]'},
      base: {pid: process.pid},
    },
    destination,
  )
}

export type {Logger}
