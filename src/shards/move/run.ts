import {ExitCode, UserError, errorText} from '../../errors.js'
import {ensureCatalog, readShardMap, type ShardMapEntry} from '../catalog.js'
import {schemaName} from '../placement.js'
import {dropCopy, undoUnswitched, unfenceHome} from './cleanup.js'
import {announce, MoveInterrupted, side, type MoveEnv, type MoveRun} from './context.js'
import {cutover} from './cutover.js'
import {claimShard, createJob, deleteJob, listJobs, liveJob, ownerName, updateJob, type MoveJob} from './jobs.js'
import {streamName} from './names.js'
import {MoveStopped, PHASES, PHASE_NAMES, mapEntry, type PhaseFacts, type PhaseName} from './phases.js'
import {dropPublication, dropSubscription, slotExists, subscriptionExists, waitForStream} from './replication.js'
import {dropJobCopy, schemaContents, schemaExists, schemaMadeBy, schemaTables} from './schema.js'
import {leaseFence, liftFence, setFenceSql} from './server-objects.js'
import {verifyCopies} from './verify.js'

/**
 * `shards move`, `shards complete`, `shards revert`: input checks (bad input changes nothing), the shard's
 * move lock, the job row, and the phases run in order with the job's phase recorded before each.
 */
export interface MoveHooks {
  /** A phase starts (text = what it does) or reports progress. */
  onPhase?(phase: string, text: string): void
  /** A phase ended. */
  onPhaseDone?(phase: string, ok: boolean, text?: string): void
  signal?: AbortSignal
}

export type MoveStart = 'new' | 'resumed' | 'restarted'

export interface PhaseReport {
  phase: string
  /** When it started (ISO time) and how long it took. */
  startedAt: string
  ms: number
  ok: boolean
  detail?: string
}

export interface MoveResult {
  job: MoveJob
  start: MoveStart
  /** For resumed and restarted jobs: why. */
  startNote?: string
  phases: PhaseReport[]
  facts: PhaseFacts
  ok: boolean
  error?: string
  /** Stopped by --prepare before verify and the cutover. */
  prepared?: boolean
  /** A new job whose preflight failed: it was removed from the catalog (nothing had changed). */
  discarded?: boolean
}

function entryOf(map: {shards: ShardMapEntry[]; logical: number}, shard: number): ShardMapEntry {
  const e = map.shards.find((s) => s.shard === shard)
  if (!Number.isInteger(shard) || shard < 0 || !e) {
    throw new UserError(`Shard ${shard} is not in the shard map (it has shards 0..${map.logical - 1}).`, {
      fix: 'Pick a shard from `feedops shards map --json`.',
    })
  }
  return e
}

function alreadyThere(shard: number, to: string): UserError {
  return new UserError(`Shard ${shard} is already on ${to}.`, {fix: 'Pass --to with another server.'})
}

function checkServerName(env: MoveEnv, name: string): void {
  if (!env.settings.servers.some((s) => s.name === name)) {
    throw new UserError(`Server "${name}" is not in env.shards.servers (${env.settings.servers.map((s) => s.name).join(', ')}).`, {
      fix: 'Pass --to with one of the configured server names.',
    })
  }
}

type Claim = Awaited<ReturnType<typeof claimShard>>

/** Commands that write bring the catalog's tables up to date first (a no-op, one SELECT, when they are). */
export async function migrateCatalog(env: MoveEnv): Promise<void> {
  const c = await env.pools.catalog.connect()
  try {
    await ensureCatalog(c)
  } finally {
    c.release()
  }
}

async function withClaim<T>(env: MoveEnv, shard: number, fn: (catalog: Claim) => Promise<T>): Promise<T> {
  await migrateCatalog(env)
  const claim = await claimShard(env.pools.catalog, shard)
  try {
    return await fn(claim)
  } finally {
    await claim.release()
  }
}

function makeRun(env: MoveEnv, job: MoveJob, catalog: MoveRun['catalog'], hooks: MoveHooks, phase: () => string): MoveRun {
  return {
    env,
    job,
    shard: job.shard,
    schema: schemaName(job.shard),
    source: side(env, job.source),
    target: side(env, job.target),
    catalog,
    say: (text) => hooks.onPhase?.(phase(), text),
    signal: hooks.signal,
  }
}

/**
 * Moves a shard to `to`, or resumes its live job. Throws UserError for bad input (exit 2) or when another
 * process works on the shard (exit 3); a failing phase is recorded in the job and returned (ok = false).
 */
export async function moveShard(env: MoveEnv, shard: number, to: string, hooks: MoveHooks = {}, opts: {prepare?: boolean} = {}): Promise<MoveResult> {
  checkServerName(env, to)
  const map = await readShardMap(env.pools.catalog)
  const entry = entryOf(map, shard)
  // Checked before the shard's lock too, so that this bad input is told as such (exit 2) even while
  // another command holds the lock for a moment; a catalog without the move tables has no jobs.
  if (entry.server === to && !(await liveJob(env.pools.catalog, shard).catch(() => undefined))) throw alreadyThere(shard, to)
  return withClaim(env, shard, async (claim) => {
    let job = await liveJob(claim.client, shard)
    let start: MoveStart = 'new'
    let startNote: string | undefined
    if (job) {
      if (job.target !== to) {
        throw new UserError(`Shard ${shard} is already moving from ${job.source} to ${job.target} (job ${job.id}, ${job.status}).`, {
          fix: `Run \`feedops shards move ${shard} --to ${job.target}\` to resume it, or \`feedops shards revert ${shard}\` to undo it first.`,
        })
      }
      if (job.status === 'flipped') {
        throw new UserError(`Shard ${shard} already moved to ${to} (job ${job.id}); the old copy on ${job.source} is kept in sync.`, {
          fix: `Run \`feedops shards complete ${shard}\` to drop the old copy, or \`feedops shards revert ${shard}\` to move back.`,
        })
      }
    } else {
      if (entry.server === to) throw alreadyThere(shard, to)
      await assertTargetClean(env, claim.client, shard, entry.server, to)
    }
    let phase = job?.phase ?? 'preflight'
    if (!job) {
      job = await createJob(claim.client, shard, entry.server, to, ownerName())
    } else {
      const r = makeRun(env, job, claim.client, hooks, () => phase)
      const point = await resumePoint(r)
      start = point.restart ? 'restarted' : 'resumed'
      startNote = point.note
      if (point.restart) await undoUnswitched(r)
      phase = point.phase
      job = await updateJob(claim.client, job.id, {phase, status: 'running', error: null, owner: ownerName()})
    }
    claim.setJob(job.id)
    const run = makeRun(env, job, claim.client, hooks, () => phase)
    const result: MoveResult = {job, start, startNote, phases: [], facts: {}, ok: true}
    const from = PHASE_NAMES.indexOf(phase as PhaseName)
    for (const p of PHASES.slice(from)) {
      if (opts.prepare && p.name === 'verify') {
        result.prepared = true
        break
      }
      phase = p.name
      job = await updateJob(claim.client, job.id, {phase})
      hooks.onPhase?.(p.name, p.title)
      const started = performance.now()
      const startedAt = new Date().toISOString()
      try {
        await p.run(run, result.facts)
        result.phases.push({phase: p.name, startedAt, ms: performance.now() - started, ok: true})
        hooks.onPhaseDone?.(p.name, true)
      } catch (err) {
        const message = err instanceof MoveInterrupted ? 'interrupted' : errorText(err)
        result.phases.push({phase: p.name, startedAt, ms: performance.now() - started, ok: false, detail: message})
        hooks.onPhaseDone?.(p.name, false, message)
        result.ok = false
        result.error = message
        if (p.name === 'preflight' && start === 'new') {
          // A new job whose preflight failed changed nothing: it leaves no job to block other moves.
          await deleteJob(claim.client, job.id).catch(() => undefined)
          result.job = {...job, status: 'failed', error: message}
          result.discarded = true
          if (err instanceof UserError) throw err
          return result
        }
        result.job = await updateJob(claim.client, job.id, {status: 'failed', error: message}).catch(() => job!)
        if (err instanceof MoveInterrupted || err instanceof MoveStopped) return result
        if (err instanceof UserError) throw err
        return result
      }
    }
    result.job = await updateJob(claim.client, job.id, {
      status: result.prepared ? 'failed' : 'flipped',
      error: result.prepared ? 'prepared: run `move` again to verify and cut over' : null,
      ...(result.facts.freezeMs === undefined ? {} : {freezeMs: result.facts.freezeMs}),
    })
    return result
  })
}

/**
 * Where a live job picks up: phases up to the schema simply run again; from the copy on, the streams must
 * still exist (a target restored from scratch, or a slot dropped by hand, means starting over).
 */
async function resumePoint(run: MoveRun): Promise<{phase: string; restart: boolean; note: string}> {
  const phase = run.job.phase
  const at = PHASE_NAMES.indexOf(phase as PhaseName)
  if ((await mapEntry(run)).server === run.target.name) {
    return {phase: at >= PHASE_NAMES.indexOf('cutover') ? phase : 'cutover', restart: false, note: `the map already points at ${run.target.name}; finishing the switch`}
  }
  if (at <= PHASE_NAMES.indexOf('copy')) return {phase, restart: false, note: `resuming at ${phase}`}
  const fwd = streamName(run.job.id, 'fwd')
  const [sub, slot, copy] = await Promise.all([
    subscriptionExists(run.target.pool, fwd),
    slotExists(run.source.pool, fwd),
    schemaExists(run.target.pool, run.schema),
  ])
  if (!sub || !slot || !copy) {
    const missing = [!sub && `the subscription on ${run.target.name}`, !slot && `the slot on ${run.source.name}`, !copy && `the copy on ${run.target.name}`]
    return {phase: 'preflight', restart: true, note: `${missing.filter(Boolean).join(' and ')} went missing; cleaning up and starting over`}
  }
  // The copy may have been changed while nobody watched: verify runs again before any cutover.
  const resumeAt = at > PHASE_NAMES.indexOf('catch-up') ? 'catch-up' : phase
  return {phase: resumeAt, restart: false, note: `streams intact; resuming at ${resumeAt}`}
}

/**
 * The target may hold the shard's schema only as the leftover of an earlier move of this shard to it
 * (its job reverted or failed there and was cleaned up halfway); that leftover is dropped. Anything else
 * there is someone's data: refuse.
 */
async function assertTargetClean(env: MoveEnv, catalog: MoveRun['catalog'], shard: number, source: string, to: string): Promise<void> {
  const schema = schemaName(shard)
  const target = side(env, to)
  const by = await schemaMadeBy(target.pool, schema).catch(() => undefined)
  if (by === undefined) return
  // Dropped only when an ended move of this shard to this server made it (the schema says which).
  const maker = by === null ? undefined : (await listJobs(catalog, {shards: [shard]})).find((j) => j.id === by)
  if (maker && maker.target === to && maker.source === source && (maker.status === 'reverted' || maker.status === 'completed')) {
    await dropJobCopy(target.pool, to, schema, maker.id)
    return
  }
  const held = await schemaContents(target.pool, schema).catch(() => ({text: 'contents unknown'}))
  const whose = by === null ? `no move of shard ${shard} made` : `job ${by}${maker ? ` (${maker.status})` : ''} made, not an ended move of shard ${shard} to ${to}`
  throw new UserError(
    `Server ${to} already holds a schema ${schema} (${held.text}) that ${whose}; it was left as it is.`,
    {fix: `Check what it holds; drop it (\`DROP SCHEMA ${schema} CASCADE\` on ${to}) if it is stale, or move the shard to another server.`},
  )
}

/** `shards complete`: the move stays; the old copy, its streams and its fence go. */
export async function completeMove(env: MoveEnv, shard: number, hooks: MoveHooks = {}): Promise<MoveJob> {
  return withLiveJob(env, shard, 'complete', hooks, async (job, run, claim) => {
    if (job.status !== 'flipped') {
      throw new UserError(`The move of shard ${shard} (job ${job.id}) has not switched yet (${job.phase}, ${job.status}).`, {
        fix: `Run \`feedops shards move ${shard} --to ${job.target}\` to finish it first.`,
      })
    }
    await updateJob(claim.client, job.id, {phase: 'complete'})
    if ((await mapEntry(run)).server !== job.target) throw new Error(`shard ${shard} is not on ${job.target}; refusing to drop its copy on ${job.source}`)
    run.say('stopping reverse replication')
    await dropSubscription(run.source.pool, streamName(job.id, 'rev'), run.target.pool)
    await dropPublication(run.target.pool, streamName(job.id, 'rev'))
    await dropPublication(run.source.pool, streamName(job.id, 'fwd'))
    run.say(`dropping the old copy on ${job.source}`)
    await dropCopy(run, 'source')
    await unfenceHome(run, 'target')
    return updateJob(claim.client, job.id, {status: 'completed', error: null})
  })
}

/** Claims the shard, finds its live move and runs `work` on it (`shards complete`, `shards revert`). */
async function withLiveJob<T>(env: MoveEnv, shard: number, verb: 'complete' | 'revert', hooks: MoveHooks, work: (job: MoveJob, run: MoveRun, claim: Claim) => Promise<T>): Promise<T> {
  entryOf(await readShardMap(env.pools.catalog), shard)
  return withClaim(env, shard, async (claim) => {
    const job = await liveJob(claim.client, shard)
    if (!job) throw new UserError(`Shard ${shard} has no move to ${verb}.`, {fix: 'See `feedops shards moves`.', exitCode: ExitCode.nothingDone})
    claim.setJob(job.id)
    return work(job, makeRun(env, job, claim.client, hooks, () => verb), claim)
  })
}

export interface RevertResult {
  job: MoveJob
  /** True when the shard had switched and was moved back by a cutover. */
  movedBack: boolean
  freezeMs?: number
}

/**
 * `shards revert`: before the switch, drops the target's copy and streams (the shard never left); after
 * it, moves the shard back with the same cutover (the old copy is current through reverse replication),
 * once verify has found both copies the same (or with force), then drops the target's copy.
 */
export async function revertMove(env: MoveEnv, shard: number, hooks: MoveHooks = {}, opts: {force?: boolean} = {}): Promise<RevertResult> {
  return withLiveJob(env, shard, 'revert', hooks, async (job, run, claim) => {
    // Switched, or an earlier revert of a switched move died part-way (the job keeps its switch's freeze time).
    const wasFlipped = job.status === 'flipped' || (job.phase === 'revert' && job.freezeMs !== null)
    if (!wasFlipped && (await mapEntry(run)).server === job.target) {
      throw new UserError(`The move of shard ${shard} switched to ${job.target} but did not start its reverse replication (job ${job.id}).`, {
        fix: `Run \`feedops shards move ${shard} --to ${job.target}\` to finish it, then revert.`,
      })
    }
    await updateJob(claim.client, job.id, {phase: 'revert', status: 'running'})
    try {
      const freezeMs = wasFlipped ? await moveBack(run, opts.force ?? false) : undefined
      run.say(`dropping the copy on ${job.target}`)
      await dropSubscription(run.source.pool, streamName(job.id, 'rev'), run.target.pool)
      await dropPublication(run.target.pool, streamName(job.id, 'rev'))
      await undoUnswitched(run)
      const done = await updateJob(claim.client, job.id, {status: 'reverted', error: null})
      return {job: done, movedBack: wasFlipped, ...(freezeMs === undefined ? {} : {freezeMs})}
    } catch (err) {
      await updateJob(claim.client, job.id, {status: wasFlipped ? 'flipped' : 'failed', error: `revert: ${errorText(err)}`}).catch(() => undefined)
      throw err
    }
  })
}

/**
 * The cutover from target back to source over the reverse stream; returns how long writes were held.
 * The source's own fence (permanent since the move) must go when the map points back at it, and that
 * cannot be one transaction with the flip: just before the flip it is set to lapse with the freeze's
 * lease, so a revert that dies right after the flip leaves the shard's writes refused for at most that
 * long, not until someone runs it again. If the flip does not happen, it is made permanent again.
 */
async function moveBack(run: MoveRun, force: boolean): Promise<number | undefined> {
  const {job} = run
  if ((await mapEntry(run)).server === job.target) {
    run.say('catching up the old copy')
    const lag = await waitForStream({
      publisher: run.target.pool,
      subscriber: run.source.pool,
      subscriberName: run.source.name,
      subscription: streamName(job.id, 'rev'),
      schema: run.schema,
      timeoutMs: run.env.moves.catchUpTimeoutS * 1000,
      signal: run.signal,
    })
    run.say(`lag ${lag.toFixed(1)} ms; verifying the old copy`)
    await verifyBeforeMoveBack(run, force)
    run.say('freezing')
    await liftFence(run.target.pool, run.schema) // an earlier revert's lapsed fence
    try {
      const r = await cutover({
        catalog: run.catalog,
        shard: run.shard,
        schema: run.schema,
        tables: await schemaTables(run.target.pool, run.schema),
        jobId: job.id,
        from: run.target,
        to: run.source,
        leaseMs: run.env.moves.freezeLeaseMs,
        lockTimeoutMs: run.env.moves.lockTimeoutMs,
        announce: (v) => announce(run.env, v),
        beforeFlip: () => leaseFence(run.source.pool, run.schema, run.env.moves.freezeLeaseMs),
      })
      run.say(`switched back; writes held ${r.freezeMs.toFixed(1)} ms`)
      await settleAfterMoveBack(run)
      return r.freezeMs
    } catch (err) {
      const stayed = await mapEntry(run).then((e) => e.server === job.target, () => true)
      if (stayed) await run.source.pool.query(setFenceSql(run.schema, job.id, null)).catch(() => undefined)
      throw err
    }
  }
  // Switched back by an earlier revert that died before this point.
  await settleAfterMoveBack(run)
  return undefined
}

/**
 * As the cutover does before a move: the old copy must hold what the shard's home holds (compared at one
 * consistent point), or moving back would lose what differs. Refuses, naming the tables, unless forced.
 */
async function verifyBeforeMoveBack(run: MoveRun, force: boolean): Promise<void> {
  const result = await verifyCopies({
    primaryUrl: run.target.url,
    replicaUrl: run.source.url,
    schema: run.schema,
    tables: await schemaTables(run.target.pool, run.schema),
    lockTimeoutMs: run.env.moves.lockTimeoutMs,
    waitMs: Math.max(5000, run.env.moves.maxLagMs * 10),
  })
  const bad = result.tables.filter((t) => !t.ok)
  if (bad.length === 0) return
  const what = bad.map((t) => `${t.table} (${t.primaryRows} rows on ${run.target.name}, ${t.replicaRows} on ${run.source.name})`).join(', ')
  if (force) {
    run.say(`the copies differ in ${what}; moving back anyway (--force)`)
    return
  }
  throw new UserError(`Verify found the old copy on ${run.source.name} differs from the shard's home ${run.target.name} in ${what}; nothing was switched.`, {
    fix: `Find what changed (\`feedops shards verify ${run.shard}\`); run \`feedops shards revert ${run.shard} --force\` to move back anyway and lose what differs.`,
    exitCode: ExitCode.failed,
  })
}

/** After the switch back: the target's copy is fenced for good, the source's fence goes. */
async function settleAfterMoveBack(run: MoveRun): Promise<void> {
  await Promise.all([run.target.pool.query(setFenceSql(run.schema, run.job.id, null)), liftFence(run.source.pool, run.schema)])
}
