import {redactUrl, SECRET_NAME} from './urls.js'

/**
 * A copy of a config value safe to print: values under keys that name a secret (secret, password, token,
 * secretAccessKey, apiKey…) become "***", and so does every credential part of a URL, read the way its
 * client reads it (postgres://user:***@host/db, ?password=***; see urls.ts). `config show` prints only this.
 */
export function redactSecrets(value: unknown): unknown {
  if (typeof value === 'string') return redactUrl(value)
  if (Array.isArray(value)) return value.map(redactSecrets)
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, SECRET_NAME.test(k) && v !== undefined && v !== null ? '***' : redactSecrets(v)]),
    )
  }
  return value
}
