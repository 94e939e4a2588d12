import type {ShardsSettings} from '../../config/schema.js'
import {UserError} from '../../errors.js'
import {INIT_FIX, readShardMap, type ShardMap} from '../catalog.js'
import type {ServerPools} from '../pools.js'
import {pinnedShards} from './input.js'
import {planRebalance, type PlanFlags, type RebalancePlan} from './plan.js'
import {readShardSizes} from './sizes.js'

/** Reads the map and the sizes of every shard, and plans (changes nothing). */
export async function makePlan(pools: ServerPools, settings: ShardsSettings, flags: PlanFlags): Promise<{plan: RebalancePlan; map: ShardMap}> {
  const map = await readShardMap(pools.catalog)
  if (map.logical === 0 || map.shards.length === 0) throw new UserError('The catalog has no shards yet.', {fix: INIT_FIX})
  const pinned = pinnedShards(settings, map.logical)
  const names = settings.servers.map((s) => s.name)
  const shards = await readShardSizes(pools, map, names)
  const plan = planRebalance({
    mapVersion: map.version,
    servers: settings.servers.map((s) => ({name: s.name, weight: s.weight})),
    shards,
    pinned,
    flags,
  })
  return {plan, map}
}
