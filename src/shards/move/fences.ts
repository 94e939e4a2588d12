import {readShardMap} from '../catalog.js'
import {schemaName} from '../placement.js'
import type {MoveEnv} from './context.js'
import {claimShard, listJobs, type MoveJob} from './jobs.js'
import {MOVE_SCHEMA} from './names.js'
import {schemaExists} from './schema.js'
import {liftFence, setFenceSql} from './server-objects.js'

/**
 * Puts the fences of live moves where the shard map says they belong. A cutover flips the map in the
 * catalog and fences copies on other servers, so it cannot do both in one transaction; a process that
 * dies between the two leaves one of these, which this repairs:
 * - the map points at the move's target, but the old copy's fence is not permanent yet (the cutover's
 *   fence lapses with the freeze's lease; once it lapsed, a write from an app with a stale map could
 *   land on the old copy): it is made permanent;
 * - a revert switched the map back to the source and died: the target's copy is fenced for good, and a
 *   fence left on the source, the shard's home again, is lifted (the revert's own lease would lift it
 *   within the freeze lease anyway);
 * - a cutover died between its fence and its flip: the fence on the source, still the shard's home, is
 *   lifted (it lapses with the lease anyway, and the flip cannot commit once the freeze is over).
 * Shards another process works on are skipped (their cutover owns the fences). Called by `shards moves`
 * and `shards doctor`, so any look at the moves makes this right.
 */
export interface FenceRepair {
  shard: number
  job: number
  server: string
  action: 'fenced for good' | 'lifted'
}

export async function settleFences(env: MoveEnv): Promise<FenceRepair[]> {
  const jobs = await listJobs(env.pools.catalog, {liveOnly: true})
  if (jobs.length === 0) return []
  const repairs: FenceRepair[] = []
  for (const job of jobs) {
    // Looked at first without the shard's lock, which is taken only when there is something to repair
    // (a `moves` beside a running move must not make that move's next step find its shard locked).
    if ((await needed(env, job)).length === 0) continue
    let claim: Awaited<ReturnType<typeof claimShard>>
    try {
      claim = await claimShard(env.pools.catalog, job.shard)
    } catch {
      continue // being worked on
    }
    try {
      for (const r of await needed(env, job)) {
        const pool = env.pools.pool(r.server)
        await (r.action === 'lifted' ? liftFence(pool, schemaName(job.shard)) : pool.query(setFenceSql(schemaName(job.shard), job.id, null)))
        repairs.push(r)
      }
    } finally {
      await claim.release()
    }
  }
  return repairs
}

/** The repairs one job's fences need now (none while its shard is frozen: a cutover is under way). */
async function needed(env: MoveEnv, job: MoveJob): Promise<FenceRepair[]> {
  const entry = (await readShardMap(env.pools.catalog)).shards.find((s) => s.shard === job.shard)
  if (!entry || entry.state !== 'active') return []
  const schema = schemaName(job.shard)
  const reverted = entry.server === job.source && job.phase === 'revert'
  const old = entry.server === job.target ? job.source : reverted ? job.target : undefined
  if (old === undefined) {
    // A cutover that died before its flip: its fence on the source (the shard's home) would lapse with the
    // lease anyway; the flip can no longer commit (its freeze is over), so it goes now.
    if (entry.server !== job.source || !(await schemaExists(env.pools.pool(job.source), schema))) return []
    const r = await env.pools.pool(job.source).query(`SELECT 1 FROM ${MOVE_SCHEMA}.fence WHERE schema_name = $1 AND job = $2`, [schema, job.id]).catch(() => ({rowCount: 0}))
    return r.rowCount ? [{shard: job.shard, job: job.id, server: job.source, action: 'lifted'}] : []
  }
  const out: FenceRepair[] = []
  const oldPool = env.pools.pool(old)
  if (await schemaExists(oldPool, schema)) {
    const r = await oldPool.query(`SELECT 1 FROM ${MOVE_SCHEMA}.fence WHERE schema_name = $1 AND job = $2 AND expires_at IS NULL`, [schema, job.id])
    if (r.rowCount === 0) out.push({shard: job.shard, job: job.id, server: old, action: 'fenced for good'})
  }
  if (reverted) {
    const r = await env.pools.pool(entry.server).query(`SELECT 1 FROM ${MOVE_SCHEMA}.fence WHERE schema_name = $1`, [schema])
    if (r.rowCount) out.push({shard: job.shard, job: job.id, server: entry.server, action: 'lifted'})
  }
  return out
}
