import type pg from 'pg'

import {UserError, errorText} from '../errors.js'
import type {ServerPools} from './pools.js'

/** host:port/database of a postgres URL, without user or password (safe to print). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`
  } catch {
    return '(unparsable URL)'
  }
}

async function ping(pool: pg.Pool): Promise<string | null> {
  try {
    await pool.query('SELECT 1')
    return null
  } catch (err) {
    return errorText(err)
  }
}

/**
 * Connects to the catalog and every server at once; throws one UserError naming every unreachable one.
 * Called before anything is created or changed.
 */
export async function assertReachable(pools: ServerPools, urls: {catalog: string; servers: {name: string; url: string}[]}): Promise<void> {
  const targets = [
    {name: 'catalog', url: urls.catalog, pool: pools.catalog},
    ...urls.servers.map((s) => ({name: s.name, url: s.url, pool: pools.pool(s.name)})),
  ]
  const results = await Promise.all(targets.map(async (t) => ({...t, error: await ping(t.pool)})))
  const down = results.filter((r) => r.error !== null)
  if (down.length > 0) {
    const list = down.map((d) => `${d.name} (${describeUrl(d.url)}): ${d.error}`).join('; ')
    throw new UserError(`Cannot reach ${down.length === 1 ? 'Postgres server' : 'Postgres servers'} ${list}. Nothing was changed.`, {
      fix: 'Start the server(s) or fix env.shards in the config, then run the command again.',
    })
  }
}
