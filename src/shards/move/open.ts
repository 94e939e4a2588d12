import {Redis} from 'ioredis'

import type {LoadedConfig} from '../../config/load.js'
import {ServerPools} from '../pools.js'
import {assertReachable} from '../reach.js'
import {moveSettings, requireShards} from '../settings.js'
import type {MoveEnv} from './context.js'

/**
 * Connections for a move command; the catalog must answer before anything else happens. `poolMax`: per
 * server, for a caller running several moves at once (a rebalance); one move needs 6.
 */
export async function openMoveEnv(loaded: LoadedConfig, applicationName: string, opts: {poolMax?: number} = {}): Promise<MoveEnv & {close(): Promise<void>}> {
  const settings = requireShards(loaded)
  const pools = new ServerPools(settings, {max: opts.poolMax ?? 6, applicationName})
  const url = loaded.env.redis?.url
  const redis = url ? new Redis(url, {maxRetriesPerRequest: 1, lazyConnect: true, enableOfflineQueue: false}) : undefined
  redis?.on('error', () => undefined)
  const close = async () => {
    redis?.disconnect()
    await pools.end()
  }
  try {
    await assertReachable(pools, {catalog: settings.catalog, servers: []})
    await redis?.connect().catch(() => undefined) // announcing is best effort: app instances also poll
  } catch (err) {
    await close()
    throw err
  }
  return {pools, settings, moves: moveSettings(loaded), ...(redis ? {redis} : {}), close}
}
