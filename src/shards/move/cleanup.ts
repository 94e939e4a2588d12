import {readShardMap, thawShard, withCurrentVersion} from '../catalog.js'
import {announce, type MoveRun} from './context.js'
import {MOVE_SCHEMA, streamName} from './names.js'
import {dropPublication, dropSlot, dropSubscription} from './replication.js'
import {dropSchema, ForeignSchema, schemaMadeBy, schemaTables} from './schema.js'
import {clause} from './sentence.js'
import {dropFenceTriggersSql, liftFence} from './server-objects.js'

/**
 * Undoes a move that has not switched yet: the shard stays on its source, unfenced and unfrozen, and the
 * target loses its copy and every stream. Used by `revert` before the flip and by `move` when it starts over.
 */
export async function undoUnswitched(run: MoveRun): Promise<void> {
  const map = await readShardMap(run.catalog)
  if (map.shards.find((s) => s.shard === run.shard)?.server !== run.source.name) {
    throw new Error(`shard ${run.shard} is not on ${run.source.name} any more; refusing to drop the copy on ${run.target.name}`)
  }
  const thawed = await withCurrentVersion(run.catalog, (v) => thawShard(run.catalog, v, run.shard))
  if (thawed !== null) await announce(run.env, thawed)
  await liftFence(run.source.pool, run.schema).catch(ignoreMissing)
  await dropSubscription(run.target.pool, streamName(run.job.id, 'fwd'), run.source.pool)
  await dropPublication(run.source.pool, streamName(run.job.id, 'fwd'))
  await dropSlot(run.target.pool, streamName(run.job.id, 'rev'))
  await dropPublication(run.target.pool, streamName(run.job.id, 'rev'))
  await dropCopy(run, 'target')
  await unfenceHome(run, 'source')
}

/** The copy that now serves alone loses its fence triggers (the next move puts them back). */
export async function unfenceHome(run: MoveRun, which: 'source' | 'target'): Promise<void> {
  const s = run[which]
  await s.pool.query(dropFenceTriggersSql(run.schema, await schemaTables(s.pool, run.schema)))
}

/**
 * Drops one side's copy of the shard and its fence and marker rows. The target's copy goes only when this
 * job made it (a schema found there that it did not make is left alone, and said so).
 */
export async function dropCopy(run: MoveRun, which: 'source' | 'target'): Promise<void> {
  const s = run[which]
  if (which === 'target') {
    const by = await schemaMadeBy(s.pool, run.schema)
    if (by !== undefined && by !== run.job.id) {
      run.say(`${clause(new ForeignSchema(s.name, run.schema, by).message)} (not dropped)`)
      return
    }
  }
  await dropSchema(s.pool, run.schema)
  await s.pool.query(`DELETE FROM ${MOVE_SCHEMA}.fence WHERE schema_name = $1`, [run.schema]).catch(ignoreMissing)
  await s.pool.query(`DELETE FROM ${MOVE_SCHEMA}.marker WHERE schema_name = $1`, [run.schema]).catch(ignoreMissing)
}

/** feedops_move not made yet on that server: nothing to remove. */
function ignoreMissing(err: {code?: string}): void {
  if (err.code !== '42P01' && err.code !== '3F000') throw err
}
