import {readShardMap, thawShard, withCurrentVersion} from '../catalog.js'
import {schemaName, shardOfSchema} from '../placement.js'
import {announce, type MoveEnv} from './context.js'
import {isShardClaimed, listJobs, updateJob, type MoveJob} from './jobs.js'
import {MOVE_SCHEMA, parseStreamName, SYNC_SLOT} from './names.js'
import {dropPublication, dropSlot, dropSubscription} from './replication.js'
import {dropSchema, schemaContents, schemaMadeBy} from './schema.js'

/**
 * `shards doctor`: what moves left behind, and (with fix) its removal. A leftover is anything of a move
 * whose job is not live any more (or never existed): replication slots (which would hold WAL on their
 * server forever), publications, subscriptions, shard schemas the map does not point at and no live move
 * uses, fence rows, freezes whose lease ran out, and jobs marked running whose process is gone. A schema
 * the map points at is never touched.
 */
export interface Finding {
  kind: 'slot' | 'publication' | 'subscription' | 'schema' | 'fence' | 'freeze' | 'job'
  server: string
  name: string
  detail: string
  fixed?: boolean
  error?: string
}

export async function doctor(env: MoveEnv, opts: {fix: boolean}): Promise<Finding[]> {
  const catalog = env.pools.catalog
  const map = await readShardMap(catalog)
  const home = new Map(map.shards.map((s) => [s.shard, s.server]))
  const frozen = new Set(map.shards.filter((s) => s.state === 'frozen').map((s) => s.shard))
  const jobs = await listJobs(catalog).catch(() => [] as MoveJob[])
  const live = new Map(jobs.filter((j) => ['running', 'failed', 'flipped'].includes(j.status)).map((j) => [j.id, j]))
  const liveByShard = new Map([...live.values()].map((j) => [j.shard, j]))
  const findings: {finding: Finding; fix: () => Promise<unknown>}[] = []
  const add = (finding: Finding, fix: () => Promise<unknown>) => findings.push({finding, fix})

  for (const s of env.settings.servers) {
    const pool = env.pools.pool(s.name)
    const slots = await pool.query<{slot_name: string; active: boolean}>("SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'logical'")
    const subs = await pool.query<{subname: string}>('SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())')
    const pubs = await pool.query<{pubname: string}>('SELECT pubname FROM pg_publication')
    const orphan = (name: string) => {
      const p = parseStreamName(name)
      return p !== null && !live.has(p.jobId)
    }
    for (const sub of subs.rows.filter((x) => orphan(x.subname))) {
      add({kind: 'subscription', server: s.name, name: sub.subname, detail: 'belongs to no live move'}, () => dropSubscription(pool, sub.subname))
    }
    for (const slot of slots.rows) {
      const stale = orphan(slot.slot_name) || (SYNC_SLOT.test(slot.slot_name) && !slot.active && live.size === 0)
      if (stale) {
        add({kind: 'slot', server: s.name, name: slot.slot_name, detail: `belongs to no live move; it holds WAL on ${s.name}`}, () => dropSlot(pool, slot.slot_name))
      }
    }
    for (const pub of pubs.rows.filter((x) => orphan(x.pubname))) {
      add({kind: 'publication', server: s.name, name: pub.pubname, detail: 'belongs to no live move'}, () => dropPublication(pool, pub.pubname))
    }
    const schemas = await pool.query<{nspname: string}>("SELECT nspname FROM pg_namespace WHERE nspname ~ '^s[0-9]{4}$'")
    for (const {nspname} of schemas.rows) {
      const shard = shardOfSchema(nspname)!
      if (home.get(shard) === s.name) continue
      const job = liveByShard.get(shard)
      if (job && (job.source === s.name || job.target === s.name)) continue
      // Only what a move made (its mark), or an empty schema, is dropped: anything else may be someone's data.
      const by = await schemaMadeBy(pool, nspname)
      const held = await schemaContents(pool, nspname)
      const ours = by !== null && by !== undefined
      const where = `the map puts shard ${shard} on ${home.get(shard) ?? 'no server'}; no live move uses this copy`
      add(
        {
          kind: 'schema',
          server: s.name,
          name: nspname,
          detail: ours || held.tables === 0 ? where : `${where}, but no move made it (${held.text}): left for you to check`,
        },
        async () => {
          if (!ours && held.tables > 0) throw new Error(`not made by a move; drop it by hand (DROP SCHEMA ${nspname} CASCADE on ${s.name}) if it is stale`)
          await dropSchema(pool, nspname)
        },
      )
    }
    const fences = await pool
      .query<{schema_name: string; live: boolean}>(`SELECT schema_name, (expires_at IS NULL OR expires_at > clock_timestamp()) AS live FROM ${MOVE_SCHEMA}.fence`)
      .catch(() => ({rows: [] as {schema_name: string; live: boolean}[]}))
    for (const f of fences.rows) {
      const shard = shardOfSchema(f.schema_name)
      const job = shard === null ? undefined : liveByShard.get(shard)
      const onHome = shard !== null && home.get(shard) === s.name
      // A live move's fences are its own, except one on the shard's home while nobody works on the move
      // and the shard is not frozen: a cutover that died before its flip (the fence lapses with the lease).
      if (job && (!onHome || frozen.has(shard!) || (await isShardClaimed(catalog, job.shard)))) continue
      if (!f.live || onHome) {
        const detail = !f.live
          ? 'expired'
          : job
            ? `fences the shard's home: its cutover (job ${job.id}) died before the flip; writes to ${f.schema_name} fail until it lapses`
            : `fences the shard's home: writes to ${f.schema_name} fail`
        add({kind: 'fence', server: s.name, name: f.schema_name, detail}, () =>
          pool.query(`DELETE FROM ${MOVE_SCHEMA}.fence WHERE schema_name = $1`, [f.schema_name]),
        )
      }
    }
  }
  const lapsed = await catalog
    .query<{shard: number}>("SELECT shard FROM shard_map WHERE state = 'frozen' AND frozen_until <= now()")
    .catch(() => ({rows: [] as {shard: number}[]}))
  for (const {shard} of lapsed.rows) {
    if (await isShardClaimed(catalog, shard)) continue
    add({kind: 'freeze', server: home.get(shard) ?? '-', name: schemaName(shard), detail: 'frozen, lease expired (its cutover died)'}, async () => {
      const c = await catalog.connect()
      try {
        const v = await withCurrentVersion(c, (ver) => thawShard(c, ver, shard))
        if (v !== null) await announce(env, v)
      } finally {
        c.release()
      }
    })
  }
  for (const job of live.values()) {
    if (job.status !== 'running' || (await isShardClaimed(catalog, job.shard))) continue
    add({kind: 'job', server: '-', name: `job ${job.id}`, detail: `marked running at ${job.phase}, but no process works on it`}, () =>
      updateJob(catalog, job.id, {status: 'failed', error: 'interrupted (found by doctor)'}),
    )
  }
  // Subscriptions first: dropping one releases the slot it holds on the other server.
  const order: Finding['kind'][] = ['subscription', 'slot', 'publication', 'fence', 'schema', 'freeze', 'job']
  findings.sort((a, b) => order.indexOf(a.finding.kind) - order.indexOf(b.finding.kind))
  if (opts.fix) {
    for (const f of findings) {
      try {
        await f.fix()
        f.finding.fixed = true
      } catch (err) {
        f.finding.error = (err as Error).message
      }
    }
  }
  return findings.map((f) => f.finding)
}
