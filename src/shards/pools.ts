import pg from 'pg'

import type {ShardsSettings} from '../config/schema.js'
import {UserError} from '../errors.js'
import type {ShardMap} from './catalog.js'

export interface PoolOptions {
  /** Connections per server pool (default 10). */
  max?: number
  /** Seconds to wait for a connection (default 5). */
  connectTimeout?: number
  applicationName?: string
}

/** One pg.Pool per physical server of env.shards.servers, plus one for the catalog. */
export class ServerPools {
  readonly catalog: pg.Pool
  readonly serverNames: string[]
  private readonly pools = new Map<string, pg.Pool>()

  constructor(settings: Pick<ShardsSettings, 'catalog' | 'servers'>, opts: PoolOptions = {}) {
    const common = {
      max: opts.max ?? 10,
      connectionTimeoutMillis: (opts.connectTimeout ?? 5) * 1000,
      application_name: opts.applicationName ?? 'feedops',
    }
    this.catalog = quiet(new pg.Pool({connectionString: settings.catalog, ...common}))
    for (const s of settings.servers) this.pools.set(s.name, quiet(new pg.Pool({connectionString: s.url, ...common})))
    this.serverNames = settings.servers.map((s) => s.name)
  }

  pool(serverName: string): pg.Pool {
    const p = this.pools.get(serverName)
    if (!p) {
      throw new UserError(`Server "${serverName}" is not in env.shards.servers (${this.serverNames.join(', ')}).`, {
        fix: 'Add the server to the config or move its shards first.',
      })
    }
    return p
  }

  poolForShard(map: ShardMap, shard: number): pg.Pool {
    const entry = map.shards[shard]?.shard === shard ? map.shards[shard] : map.shards.find((s) => s.shard === shard)
    if (!entry) throw new RangeError(`Shard ${shard} is not in the shard map (version ${map.version}).`)
    return this.pool(entry.server)
  }

  async end(): Promise<void> {
    await Promise.all([this.catalog.end(), ...[...this.pools.values()].map((p) => p.end())])
  }
}

/**
 * A server that dies must not crash the process. An idle client's error reaches the pool (which drops the
 * client); a checked-out client's reaches only the client itself, where an unhandled 'error' event would
 * end the process: every client gets a listener when it connects. Its queries fail as usual, and pg-pool
 * discards a client that can no longer be queried when it is released.
 */
export function quietPool(pool: pg.Pool): pg.Pool {
  pool.on('error', () => undefined)
  pool.on('connect', (client) => {
    client.on('error', () => undefined)
  })
  return pool
}

const quiet = quietPool
