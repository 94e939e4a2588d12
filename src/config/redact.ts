/**
 * A copy of a config value safe to print: values under keys that name a secret (secret, password,
 * token, secretAccessKey…) become "***", and so does the password part of any URL
 * (postgres://user:***@host/db). `config show` prints only this.
 */
const SECRET_KEY = /secret|password|passphrase|token/i
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@/\s]+@/i

export function redactSecrets(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(URL_PASSWORD, '$1***@')
  if (Array.isArray(value)) return value.map(redactSecrets)
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, SECRET_KEY.test(k) && v !== undefined && v !== null ? '***' : redactSecrets(v)]),
    )
  }
  return value
}
