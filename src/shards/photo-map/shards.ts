import type {ShardsSettings} from '../../config/schema.js'
import {ExitCode, UserError} from '../../errors.js'
import {INIT_FIX, readShardMap, shardsByServer, type ShardMap} from '../catalog.js'
import {epochMs} from '../ids.js'
import type {ServerPools} from '../pools.js'
import {assertReachable} from '../reach.js'

/** The initialized shard layout the seeder and the photo map rebuild work on. */
export interface ShardWorld {
  map: ShardMap
  logical: number
  epochIso: string
  epoch: bigint
  /** Physical server → its logical shards (in shard order), for servers that hold any. */
  byServer: Map<string, number[]>
}

/**
 * Reads the catalog (map, logical count, epoch) after checking every server answers. Throws a UserError
 * when `shards init` has not run or not finished, when a server holding shards is missing from the config,
 * and — with `requireActive` — when a shard is frozen or moving (a shard move owns it).
 */
export async function openShardWorld(
  pools: ServerPools,
  settings: ShardsSettings,
  opts: {requireActive?: boolean} = {},
): Promise<ShardWorld> {
  await assertReachable(pools, settings)
  // readShardMap says so when there is no catalog yet; catalog_info is made with the map's tables.
  const map = await readShardMap(pools.catalog)
  const info = await pools.catalog.query<{epoch: string}>('SELECT epoch FROM catalog_info')
  const epochIso = info.rows[0]?.epoch ?? ''
  if (map.logical === 0 || !epochIso) throw new UserError('No logical shards exist yet.', {fix: INIT_FIX})
  if (map.shards.length < map.logical) {
    throw new UserError(`Only ${map.shards.length} of ${map.logical} logical shards exist.`, {fix: 'Run `feedops shards init` again to finish it.'})
  }
  const configured = new Set(settings.servers.map((s) => s.name))
  const byServer = shardsByServer(map)
  for (const [server, shards] of byServer) {
    if (!configured.has(server)) {
      throw new UserError(`Shard ${shards[0]} is on server ${server}, which env.shards.servers does not list.`, {
        fix: 'Add that server to the config.',
      })
    }
  }
  if (opts.requireActive) {
    const busy = map.shards.filter((s) => s.state !== 'active')
    if (busy.length > 0) {
      throw new UserError(
        `${busy.length} shard(s) are not active (${busy.slice(0, 5).map((s) => `${s.shard} ${s.state}`).join(', ')}${busy.length > 5 ? ', …' : ''}); nothing was written.`,
        {fix: 'Let the shard move finish (or roll it back), then run this again.', exitCode: ExitCode.nothingDone},
      )
    }
  }
  return {map, logical: map.logical, epochIso, epoch: epochMs(epochIso), byServer}
}
