import {parse as parsePostgresUrl} from 'pg-connection-string'

/**
 * Service URLs (postgres, redis, the AWS endpoint) read with the parser their client uses: pg-connection-string
 * for postgres:// (pg honours `?password=` there), the WHATWG URL parser otherwise (ioredis and the AWS SDK).
 * Both config validation and redaction go through here, so what is shown is what the client would use.
 */

/** Key and query-parameter names whose values are secrets. */
export const SECRET_NAME = /secret|passw(or)?d|passphrase|token|api[-_]?key|private[-_]?key/i

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i
const POSTGRES = /^postgres(ql)?:\/\//i
// While parsing, pg-connection-string reads the files these name and warns about some sslmodes; only the
// credentials matter here.
const PG_SSL_PARAMS = /(?<=[?&])(sslcert|sslkey|sslrootcert|sslmode)=[^&#]*&?/gi
const ESCAPES = 'write @, /, ?, # and % in a password as %40, %2F, %3F, %23 and %25'

interface ParsedUrl {
  /** The URL as WHATWG reads it; absent for a postgres URL only pg can read (`postgres://u:pw@/db?host=/run`). */
  url?: URL
  /** Every credential the client would send (the password, `?password=`…). */
  secrets: string[]
}

/** Parses a URL as its client will, or says why the client could not use it (never echoing the URL). */
function parseUrl(text: string): ParsedUrl | {problem: string} {
  let url: URL | undefined
  try {
    url = new URL(text)
  } catch {
    url = undefined
  }
  const secrets: string[] = []
  if (POSTGRES.test(text)) {
    let pg: ReturnType<typeof parsePostgresUrl>
    try {
      pg = parsePostgresUrl(text.replace(PG_SSL_PARAMS, ''))
    } catch {
      return {problem: `the postgres client cannot parse it; ${ESCAPES}`}
    }
    // A raw / in a password ends the host early: the rest lands in the database name.
    if (pg.database?.includes('@')) return {problem: `it has an @ after its host; ${ESCAPES}`}
    if (pg.password) secrets.push(pg.password)
  } else if (!url) {
    return {problem: `it is not a URL; ${ESCAPES}`}
  }
  if (url) {
    if (`${url.pathname}${url.search}${url.hash}`.includes('@')) return {problem: `it has an @ after its host; ${ESCAPES}`}
    if (url.password) secrets.push(safeDecode(url.password))
    for (const [name, value] of url.searchParams) if (SECRET_NAME.test(name) && value !== '') secrets.push(value)
  }
  return url ? {url, secrets} : {secrets}
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

/** Why the client could not use this URL, or undefined when it can (for the config schema). */
export function urlProblem(text: string): string | undefined {
  const parsed = parseUrl(text)
  return 'problem' in parsed ? parsed.problem : undefined
}

/**
 * The URL with every credential part as *** (the password, secret query parameters). A URL that cannot be
 * shown safely (one its client cannot parse, or where a secret would still show) becomes `scheme://***`.
 * Text that is not a URL is returned as it is.
 */
export function redactUrl(text: string): string {
  const scheme = SCHEME.exec(text)?.[1]
  if (!scheme) return text
  const hidden = `${scheme}://***`
  const parsed = parseUrl(text)
  if ('problem' in parsed || !parsed.url) return hidden
  const {url, secrets} = parsed
  if (secrets.length === 0) return text
  if (url.password) url.password = '***'
  for (const name of new Set(url.searchParams.keys())) if (SECRET_NAME.test(name)) url.searchParams.set(name, '***')
  const shown = url.href
  return secrets.some((s) => shown.includes(s) || shown.includes(encodeURIComponent(s))) ? hidden : shown
}
