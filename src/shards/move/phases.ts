import {setTimeout as sleep} from 'node:timers/promises'

import {epochMs} from '../ids.js'
import {readShardMap, thawShard, withCurrentVersion} from '../catalog.js'
import {announce, checkSignal, type MoveRun} from './context.js'
import {cutover} from './cutover.js'
import {MOVE_SCHEMA, streamName} from './names.js'
import {pauseAt} from './pause.js'
import {checkServer} from './preflight.js'
import {
  dropPublication,
  dropSlot,
  dropSubscription,
  ensurePublication,
  ensureSlot,
  ensureSubscription,
  lagBytes,
  markerRoundTrip,
  ReplicationTimeout,
  slotExists,
  StreamStalled,
  subscriptionExists,
  subscriptionStreaming,
} from './replication.js'
import {
  buildIndexes,
  dropJobCopy,
  ForeignSchema,
  missingIndexes,
  prepareTargetSchema,
  schemaExists,
  schemaMadeBy,
  schemaTables,
  validateForeignKeys,
} from './schema.js'
import {clause, sentence} from './sentence.js'
import {snapshotCopy} from './copy.js'
import {ensureServerObjects, liftFence, setFenceSql} from './server-objects.js'
import {verifyCopies, type VerifyResult} from './verify.js'

/**
 * The move as a plan of phases, each safe to run again after a crash (it looks at what exists first).
 * The job row records the phase being run; `move` again starts from it (see resumePoint in run.ts).
 */
export interface PhaseFacts {
  rowsCopied?: number
  indexesBuilt?: number
  /** Of the copy phase: how long index builds ran on after the last rows were copied. */
  indexMs?: number
  lagMs?: number
  lagBytes?: number | null
  verify?: VerifyResult
  freezeMs?: number
  /** When the map was switched by an earlier run that died before recording freezeMs: the lease, which bounds it. */
  freezeLeaseMs?: number
  waitMs?: number
  version?: number
}

export interface Phase {
  name: PhaseName
  title: string
  run(run: MoveRun, facts: PhaseFacts): Promise<void>
}

export const PHASE_NAMES = ['preflight', 'schema', 'copy', 'catch-up', 'verify', 'cutover', 'reverse'] as const
export type PhaseName = (typeof PHASE_NAMES)[number]

/** A phase failed in a way the user must look at (not a crash): the job stops there. */
export class MoveStopped extends Error {
  override readonly name = 'MoveStopped'
}

export const PHASES: readonly Phase[] = [
  {name: 'preflight', title: 'preflight', run: preflight},
  {name: 'schema', title: 'schema on the target', run: schema},
  {name: 'copy', title: 'copy', run: copy},
  {name: 'catch-up', title: 'catch-up', run: catchUp},
  {name: 'verify', title: 'verify', run: verify},
  {name: 'cutover', title: 'cutover', run: cut},
  {name: 'reverse', title: 'reverse replication', run: reverse},
]

async function preflight(run: MoveRun): Promise<void> {
  const problems = [
    // The source serves the forward stream and later subscribes to the reverse one; the target the other way.
    ...(await checkServer({...run.source, slots: 3, senders: 3, workers: 1, schema: run.schema})),
    ...(await checkServer({...run.target, slots: 1, senders: 1, workers: 1})),
  ]
  if (problems.length === 0 && !(await schemaExists(run.source.pool, run.schema))) {
    problems.push(`${run.source.name} has no schema ${run.schema}, though the map says the shard is there`)
  }
  if (problems.length > 0) throw new MoveStopped(sentence(`Preflight failed: ${problems.map(clause).join('; ')}`))
  run.say('servers ready')
}

async function schema(run: MoveRun): Promise<void> {
  // Only a copy this job made is built on; anything else there is someone's data (see assertTargetClean).
  const by = await schemaMadeBy(run.target.pool, run.schema)
  if (by !== undefined && by !== run.job.id) throw new MoveStopped(`${sentence(new ForeignSchema(run.target.name, run.schema, by).message)}`)
  await Promise.all([ensureServerObjects(run.source.pool), ensureServerObjects(run.target.pool)])
  const info = await run.catalog.query<{epoch: string}>('SELECT epoch FROM catalog_info')
  const deferred = await prepareTargetSchema(run.source.pool, run.target.pool, run.shard, run.schema, epochMs(info.rows[0]!.epoch), run.job.id)
  // A marker row left by an earlier move of this shard would collide with the copied one.
  await run.target.pool.query(`DELETE FROM ${MOVE_SCHEMA}.marker WHERE schema_name = $1`, [run.schema])
  await ensurePublication(run.source.pool, run.job.id, 'fwd', run.schema)
  run.say(`tables ready, ${deferred.length} indexes and keys deferred`)
}

async function copy(run: MoveRun, facts: PhaseFacts): Promise<void> {
  const name = streamName(run.job.id, 'fwd')
  if (!(await subscriptionExists(run.target.pool, name))) {
    if (await slotExists(run.source.pool, name)) {
      // An earlier copy died part-way: it starts over from a fresh slot into an empty target.
      run.say('an earlier copy stopped part-way; starting it over')
      await dropSlot(run.source.pool, name)
      await dropJobCopy(run.target.pool, run.target.name, run.schema, run.job.id)
      await schema(run)
    }
    const tables = await schemaTables(run.source.pool, run.schema)
    const indexes = await missingIndexes(run.source.pool, run.target.pool, run.schema)
    const keys = indexes.filter((ix) => ix.kind !== 'foreign key')
    const builds: Promise<void>[] = []
    const build = (table: string) => {
      const b = buildIndexes(run.target.pool, run.schema, keys.filter((ix) => ix.table === table))
      b.catch(() => undefined) // awaited below; not an unhandled rejection meanwhile
      builds.push(b)
    }
    try {
      facts.rowsCopied = await snapshotCopy({
        sourceUrl: run.source.url,
        sourceName: run.source.name,
        targetName: run.target.name,
        snapshotWaitMs: run.env.moves.snapshotWaitS * 1000,
        onWaiting: (text) => run.say(text),
        source: run.source.pool,
        target: run.target.pool,
        schema: run.schema,
        slot: name,
        tables,
        onProgress: (done, parts, rows) => run.say(`${done}/${parts} parts copied, ${rows} rows`),
        // A table's indexes are built as soon as its rows are in, beside the copies still running.
        onTable: build,
        signal: run.signal,
      })
    } catch (err) {
      await Promise.allSettled(builds)
      throw err
    }
    const copiedAt = performance.now()
    run.say('building indexes')
    await Promise.all(builds)
    await buildIndexes(run.target.pool, run.schema, indexes.filter((ix) => ix.kind === 'foreign key'))
    facts.indexesBuilt = indexes.length
    facts.indexMs = performance.now() - copiedAt
    // Streams what changed since the copy's snapshot (the slot has kept it).
    await ensureSubscription(run.target.pool, run.job.id, 'fwd', {publisherUrl: run.source.url})
  }
  await pauseAt('copy')
  run.say(`${facts.rowsCopied ?? 'all'} rows, ${facts.indexesBuilt ?? 0} indexes built; streaming`)
}

/** Waits until a change made on the source is applied on the target within maxLagMs. */
async function catchUp(run: MoveRun, facts: PhaseFacts): Promise<void> {
  await pauseAt('catch-up')
  await waitForLag(run, facts)
}

/** How long a stream may go without an apply worker before a wait on it gives up. */
const STALLED_MS = 10_000

async function waitForLag(run: MoveRun, facts: PhaseFacts): Promise<void> {
  const {maxLagMs, catchUpTimeoutS} = run.env.moves
  const deadline = Date.now() + catchUpTimeoutS * 1000
  const slot = streamName(run.job.id, 'fwd')
  let noWorkerSince: number | undefined
  for (;;) {
    checkSignal(run)
    let lag: number
    try {
      lag = await markerRoundTrip(run.source.pool, run.target.pool, run.schema, Math.min(5000, Math.max(1, deadline - Date.now())))
    } catch (err) {
      if (!(err instanceof ReplicationTimeout) || Date.now() > deadline) throw err
      lag = Number.POSITIVE_INFINITY
      // A stream without an apply worker does not move however long it is waited on.
      if (await subscriptionStreaming(run.target.pool, slot)) noWorkerSince = undefined
      else if (Date.now() - (noWorkerSince ??= Date.now()) >= STALLED_MS) throw new MoveStopped(`${new StreamStalled(slot, run.target.name, Math.round((Date.now() - noWorkerSince) / 1000)).message}.`)
    }
    facts.lagMs = lag
    facts.lagBytes = await lagBytes(run.source.pool, slot)
    run.say(`lag ${Number.isFinite(lag) ? `${lag.toFixed(1)} ms` : '> 5 s'}${facts.lagBytes === null ? '' : `, ${facts.lagBytes} bytes`}`)
    if (lag <= maxLagMs) return
    if (Date.now() > deadline) {
      throw new MoveStopped(`The target did not catch up to within ${maxLagMs} ms in ${catchUpTimeoutS} s; run \`move\` again to keep trying.`)
    }
    await sleep(100)
  }
}

async function verify(run: MoveRun, facts: PhaseFacts): Promise<void> {
  run.say('hashing both copies')
  const tables = await schemaTables(run.source.pool, run.schema)
  const result = await verifyCopies({
    primaryUrl: run.source.url,
    replicaUrl: run.target.url,
    schema: run.schema,
    tables,
    lockTimeoutMs: run.env.moves.lockTimeoutMs,
    waitMs: Math.max(5000, run.env.moves.maxLagMs * 10),
  })
  facts.verify = result
  const bad = result.tables.filter((t) => !t.ok)
  if (bad.length > 0) {
    throw new MoveStopped(
      `Verify found the copies differ in ${bad.map((t) => `${t.table} (${t.primaryRows} rows on ${run.source.name}, ${t.replicaRows} on ${run.target.name})`).join(', ')}; nothing was switched.`,
    )
  }
  run.say(`${tables.length} tables match (${result.tables.reduce((a, t) => a + t.primaryRows, 0)} rows)`)
}

/** Shard's map entry now. */
export async function mapEntry(run: MoveRun) {
  const map = await readShardMap(run.catalog)
  const e = map.shards.find((s) => s.shard === run.shard)
  if (!e) throw new RangeError(`shard ${run.shard} is not in the map`)
  return e
}

async function cut(run: MoveRun, facts: PhaseFacts): Promise<void> {
  const rev = streamName(run.job.id, 'rev')
  if ((await mapEntry(run)).server !== run.target.name) {
    // An earlier attempt that died mid-cutover: its freeze and fence lapse by themselves; end them now.
    await withCurrentVersion(run.catalog, (v) => thawShard(run.catalog, v, run.shard))
    await liftFence(run.source.pool, run.schema)
    // A reverse slot made before the flip would also catch the forward stream's changes: start it afresh.
    await dropSlot(run.target.pool, rev)
    await ensurePublication(run.target.pool, run.job.id, 'rev', run.schema)
    await waitForLag(run, facts)
    run.say('freezing')
    const tables = await schemaTables(run.source.pool, run.schema)
    const r = await cutover({
      catalog: run.catalog,
      shard: run.shard,
      schema: run.schema,
      tables,
      jobId: run.job.id,
      from: run.source,
      to: run.target,
      leaseMs: run.env.moves.freezeLeaseMs,
      lockTimeoutMs: run.env.moves.lockTimeoutMs,
      announce: (v) => announce(run.env, v),
      // The target takes no writes of its own until the flip, so this slot holds exactly what it gets after.
      beforeFlip: () => ensureSlot(run.target.pool, rev),
    })
    Object.assign(facts, {freezeMs: r.freezeMs, waitMs: r.waitMs, version: r.version})
  } else if (facts.freezeMs === undefined) {
    facts.freezeLeaseMs = run.env.moves.freezeLeaseMs
  }
  // The old copy stays fenced for good: a write from a stale map must never land there.
  await run.source.pool.query(setFenceSql(run.schema, run.job.id, null))
  run.say(facts.freezeMs === undefined ? 'already switched' : `switched; writes held ${facts.freezeMs.toFixed(1)} ms`)
}

async function reverse(run: MoveRun): Promise<void> {
  // The forward stream must be gone before the reverse one starts, or changes would go round in a loop.
  await dropSubscription(run.target.pool, streamName(run.job.id, 'fwd'), run.source.pool)
  await dropPublication(run.source.pool, streamName(run.job.id, 'fwd'))
  await ensurePublication(run.target.pool, run.job.id, 'rev', run.schema)
  await ensureSubscription(run.source.pool, run.job.id, 'rev', {publisherUrl: run.target.url})
  await validateForeignKeys(run.target.pool, run.schema)
  run.say(`${run.target.name} → ${run.source.name} streaming`)
}
