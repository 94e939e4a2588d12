import {UserError, errorText} from '../../errors.js'
import {readShardMap} from '../catalog.js'
import {schemaName, shardOfSchema} from '../placement.js'
import type {MoveEnv} from './context.js'
import {listJobs, type MoveJob} from './jobs.js'
import {streamName} from './names.js'
import {subscriptionExists} from './replication.js'
import {schemaTables} from './schema.js'
import {verifyCopies, type VerifyResult} from './verify.js'

/**
 * `shards verify`: for each shard, does the map agree with what the servers hold? The mapped server must
 * have the schema and not be fenced; a copy anywhere else must belong to the shard's live move (its target
 * before the switch, its fenced old source after). So there is exactly one writable copy per logical shard.
 * For a shard whose move is streaming, the two copies are also compared (counts and hashes).
 */
export interface ShardCheck {
  shard: number
  server: string
  /** Servers holding the schema, with what each copy is. */
  copies: {server: string; role: 'home' | 'move target' | 'old copy (fenced)' | 'stray'; fenced: boolean}[]
  problems: string[]
  verify?: VerifyResult
  job?: number
}

export async function checkShards(env: MoveEnv, shards: number[] | 'all'): Promise<ShardCheck[]> {
  const map = await readShardMap(env.pools.catalog)
  const wanted = shards === 'all' ? map.shards.map((s) => s.shard) : shards
  const unknown = wanted.filter((n) => !map.shards.some((s) => s.shard === n))
  if (unknown.length > 0) {
    throw new UserError(`Shard${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not in the shard map (0..${map.logical - 1}).`, {
      fix: 'Pass shards from `feedops shards map --json`, or --all.',
    })
  }
  const jobs = new Map((await listJobs(env.pools.catalog, {liveOnly: true}).catch(() => [] as MoveJob[])).map((j) => [j.shard, j]))
  // Which shard schemas each server holds, and which of those are fenced.
  const held = new Map<string, Map<number, boolean>>()
  await Promise.all(
    env.settings.servers.map(async (s) => {
      const pool = env.pools.pool(s.name)
      const r = await pool.query<{nspname: string}>("SELECT nspname FROM pg_namespace WHERE nspname ~ '^s[0-9]{4}$'")
      const fenced = await pool
        .query<{schema_name: string}>('SELECT schema_name FROM feedops_move.fence WHERE expires_at IS NULL OR expires_at > clock_timestamp()')
        .then((x) => new Set(x.rows.map((y) => y.schema_name)))
        .catch(() => new Set<string>())
      held.set(s.name, new Map(r.rows.map((x) => [shardOfSchema(x.nspname)!, fenced.has(x.nspname)])))
    }),
  )
  const out: ShardCheck[] = []
  for (const shard of wanted) {
    const entry = map.shards.find((s) => s.shard === shard)!
    const job = jobs.get(shard)
    const check: ShardCheck = {shard, server: entry.server, copies: [], problems: [], ...(job ? {job: job.id} : {})}
    for (const [server, schemas] of held) {
      if (!schemas.has(shard)) continue
      const fenced = schemas.get(shard)!
      const role =
        server === entry.server
          ? 'home'
          : job && job.status !== 'flipped' && server === job.target
            ? 'move target'
            : job && job.status === 'flipped' && server === job.source && fenced
              ? 'old copy (fenced)'
              : 'stray'
      check.copies.push({server, role, fenced})
      if (role === 'home' && fenced) check.problems.push(`its home ${server} is fenced: writes there fail`)
      if (role === 'stray') check.problems.push(`${server} holds a copy no live move accounts for${fenced ? '' : ' (not fenced)'}`)
    }
    if (!check.copies.some((c) => c.role === 'home')) check.problems.push(`${entry.server} (its home in the map) has no schema ${schemaName(shard)}`)
    if (job && check.problems.length === 0) {
      try {
        check.verify = await verifyMoving(env, job, entry.server)
        if (check.verify && !check.verify.ok) {
          check.problems.push(`copies differ in ${check.verify.tables.filter((t) => !t.ok).map((t) => t.table).join(', ')}`)
        }
      } catch (err) {
        check.problems.push(`could not compare the copies: ${errorText(err)}`)
      }
    }
    out.push(check)
  }
  return out
}

/** Compares a moving shard's two copies when a stream links them; undefined when none does yet. */
async function verifyMoving(env: MoveEnv, job: MoveJob, home: string): Promise<VerifyResult | undefined> {
  const other = home === job.source ? job.target : job.source
  const dir = home === job.source ? 'fwd' : 'rev'
  const replica = env.pools.pool(other)
  if (!(await subscriptionExists(replica, streamName(job.id, dir)))) return undefined
  const url = (name: string) => env.settings.servers.find((s) => s.name === name)!.url
  const schema = schemaName(job.shard)
  return verifyCopies({
    primaryUrl: url(home),
    replicaUrl: url(other),
    schema,
    tables: await schemaTables(env.pools.pool(home), schema),
    lockTimeoutMs: env.moves.lockTimeoutMs,
    waitMs: Math.max(5000, env.moves.maxLagMs * 10),
  })
}

