import {setTimeout as sleep} from 'node:timers/promises'

import type pg from 'pg'

import type {ShardsSettings} from '../../config/schema.js'
import {ExitCode, UserError, errorText} from '../../errors.js'
import {readShardMap} from '../catalog.js'
import type {MoveEnv} from '../move/context.js'
import {listJobs, ownerName, type MoveJob} from '../move/jobs.js'
import {completeMove, moveShard} from '../move/run.js'
import {pinnedShards} from './input.js'
import {makePlan} from './make.js'
import {assertPlanHolds, brokenMoves} from './plan-file.js'
import type {PlanFlags, RebalancePlan} from './plan.js'
import {nextMove, pairKey, type MoveSlot, type ScheduleLimits} from './schedule.js'
import {
  createRebalance,
  ensureRebalanceTables,
  latestRebalance,
  lockRunner,
  rebalanceMoves,
  setMove,
  setRebalance,
  stopRequested,
  type MoveOutcome,
  type RebalanceMoveRow,
  type RebalanceOptions,
  type RebalanceRow,
  type RebalanceStatus,
} from './store.js'

/**
 * `shards rebalance`: runs a plan as ordinary move jobs (moveShard, the entry `shards move` uses), at most
 * one per source and one per target server at a time unless asked, recorded in the catalog so that a
 * second run continues it (nothing moves twice) and `--status` and `--stop` work from any machine.
 */
export interface RebalanceHooks {
  /** A move starts, or its phase reports progress (lag during catch-up). */
  onMove?(shard: number, text: string): void
  onMoveDone?(shard: number, ok: boolean, text: string): void
  /** The plan is known (fresh or continued), before any move starts. */
  onPlan?(plan: RebalancePlan, continued: boolean, done: number[]): void | Promise<void>
  signal?: AbortSignal
}

export interface RebalanceRequest {
  /** A plan file's plan; else a fresh plan with `flags`. */
  plan?: RebalancePlan
  flags: PlanFlags
  /** True when plan flags were given on the command line (they must then match an open rebalance's). */
  flagsGiven: boolean
  options: RebalanceOptions
}

export interface MoveSummary {
  shard: number
  from: string
  to: string
  outcome: MoveOutcome | 'skipped'
  /** Done by an earlier run of this rebalance. */
  earlier: boolean
  jobId: number | null
  freezeMs: number | null
  ms: number | null
  /** Per phase, of this run: ms. */
  phases: Record<string, number>
  error: string | null
}

export interface RebalanceResult {
  id: number
  continued: boolean
  status: RebalanceStatus
  plan: RebalancePlan
  moves: MoveSummary[]
  stopped: boolean
  interrupted: boolean
  ok: boolean
}

const STOP_POLL_MS = 500

export async function runRebalance(env: MoveEnv, settings: ShardsSettings, req: RebalanceRequest, hooks: RebalanceHooks = {}): Promise<RebalanceResult> {
  const lock = await lockRunner(env.pools.catalog)
  try {
    await ensureRebalanceTables(lock.client)
    const {row, continued} = await openOrCreate(env, settings, req, lock.client)
    const plan = row.plan
    await setRebalance(lock.client, row.id, {status: 'running', stopRequested: false, owner: ownerName(), options: req.options})
    const moves = await rebalanceMoves(lock.client, row.id)
    const summaries = new Map<number, MoveSummary>(moves.map((m) => [m.shard, summaryOf(m)]))
    const pending: Queued[] = (await pendingMoves(env, row.id, moves, summaries)).map((m) => ({shard: m.shard, from: m.source, to: m.target, row: m}))
    await hooks.onPlan?.(plan, continued, [...summaries.values()].filter((s) => s.earlier).map((s) => s.shard))

    const limits: ScheduleLimits = {concurrency: req.options.concurrency, perServer: req.options.perServer}
    const failedPairs = new Set<string>()
    const inFlight = new Map<number, Promise<void>>()
    const running: Queued[] = []
    let stopped = false
    const halted = () => stopped || Boolean(hooks.signal?.aborted)

    const runOne = async (q: Queued) => {
      const outcome = await moveOne(env, row.id, q.row, req.options.complete, summaries.get(q.shard)!, hooks)
      if (outcome === 'failed') failedPairs.add(pairKey(q))
    }

    for (;;) {
      for (let q = halted() ? undefined : nextMove(pending, running, failedPairs, limits); q; q = nextMove(pending, running, failedPairs, limits)) {
        const m = q
        pending.splice(pending.indexOf(m), 1)
        running.push(m)
        inFlight.set(
          m.shard,
          runOne(m).finally(() => {
            running.splice(running.indexOf(m), 1)
            inFlight.delete(m.shard)
          }),
        )
      }
      if (inFlight.size === 0) break
      await Promise.race([...inFlight.values(), sleep(STOP_POLL_MS)])
      if (!stopped && (await stopRequested(env.pools.catalog, row.id).catch(() => false))) stopped = true
    }

    const list = moves.map((m) => summaries.get(m.shard)!)
    for (const q of pending) {
      const s = summaries.get(q.shard)!
      s.outcome = failedPairs.has(pairKey(q)) ? 'skipped' : 'pending'
    }
    const interrupted = Boolean(hooks.signal?.aborted)
    const failed = list.some((s) => s.outcome === 'failed' || s.outcome === 'skipped')
    const left = list.some((s) => !isDone(s.outcome))
    const status: RebalanceStatus = !left ? 'done' : interrupted ? 'interrupted' : failed ? 'failed' : stopped ? 'stopped' : 'failed'
    await setRebalance(env.pools.catalog, row.id, {status, stopRequested: false})
    return {id: row.id, continued, status, plan, moves: list, stopped: stopped && !interrupted, interrupted, ok: status === 'done'}
  } finally {
    await lock.release()
  }
}

const isDone = (o: MoveSummary['outcome']) => o === 'moved' || o === 'completed'
type Queued = MoveSlot & {row: RebalanceMoveRow}

function summaryOf(m: RebalanceMoveRow): MoveSummary {
  return {
    shard: m.shard,
    from: m.source,
    to: m.target,
    outcome: m.outcome,
    earlier: isDone(m.outcome),
    jobId: m.jobId,
    freezeMs: null,
    ms: null,
    phases: {},
    error: m.error,
  }
}

/**
 * The open rebalance, continued, or a new one from the plan file or a fresh plan. Plan flags or a plan file
 * that differ from the open rebalance's plan are refused: finish or abandon it first.
 */
async function openOrCreate(env: MoveEnv, settings: ShardsSettings, req: RebalanceRequest, client: pg.PoolClient): Promise<{row: RebalanceRow; continued: boolean}> {
  const open = await latestRebalance(client, {openOnly: true})
  const map = await readShardMap(client)
  const pinned = pinnedShards(settings, map.logical)
  const names = settings.servers.map((s) => s.name)
  if (open) {
    // The same plan file again: every move of the open rebalance is in it (it was made from the file's moves,
    // less those already on their target).
    const key = (m: {shard: number; from: string; to: string}) => `${m.shard}:${m.from}:${m.to}`
    const inFile = new Set(req.plan?.moves.map(key) ?? [])
    const samePlan = !req.plan || open.plan.moves.every((m) => inFile.has(key(m)))
    const f = open.plan
    const sameFlags =
      !req.flagsGiven ||
      (req.flags.strategy === f.strategy && req.flags.threshold === f.threshold && (req.flags.maxMoves ?? null) === f.maxMoves && JSON.stringify([...req.flags.drain].sort()) === JSON.stringify([...f.drain].sort()))
    if (!samePlan || !sameFlags) {
      throw new UserError(`Rebalance ${open.id} (${open.status}, ${open.plan.moves.length} moves) is not finished, and this is another plan.`, {
        fix: 'Run `feedops shards rebalance` with no plan flags to continue it (`--status` shows what is left), or `feedops shards rebalance --abandon` to drop what it has left.',
        exitCode: ExitCode.nothingDone,
      })
    }
    const left = new Set((await rebalanceMoves(client, open.id)).filter((m) => !isDone(m.outcome)).map((m) => m.shard))
    const broken = brokenMoves({...open.plan, moves: open.plan.moves.filter((m) => left.has(m.shard))}, map, names, pinned)
    if (broken.length > 0) {
      throw new UserError(
        `Rebalance ${open.id} cannot go on: ${broken.map((b) => `shard ${b.move.shard} ${b.move.from}→${b.move.to} (${b.why})`).join('; ')}.`,
        {fix: 'Abandon it with `feedops shards rebalance --abandon`, then plan again.'},
      )
    }
    return {row: open, continued: true}
  }
  let plan: RebalancePlan
  if (req.plan) {
    assertPlanHolds(req.plan, map, names, pinned)
    // Moves whose shard already sits on its target need no job.
    plan = {...req.plan, moves: req.plan.moves.filter((m) => map.shards.find((s) => s.shard === m.shard)?.server !== m.to)}
  } else {
    plan = (await makePlan(env.pools, settings, req.flags)).plan
  }
  if (plan.moves.length === 0) {
    throw new UserError(`Nothing to move: the fleet is balanced for strategy ${plan.strategy} and threshold ${plan.threshold}%${plan.drain.length ? ` with ${plan.drain.join(', ')} drained` : ''}.`, {
      fix: 'Lower --threshold, or add a server to env.shards.servers, to plan moves.',
      exitCode: ExitCode.nothingDone,
    })
  }
  return {row: await createRebalance(client, plan, req.options, ownerName()), continued: false}
}

/**
 * The moves still to run, in plan order. A move recorded as running or failed whose job switched (the
 * runner died after the flip) counts as moved; a job that is gone with the shard on its target likewise.
 */
async function pendingMoves(env: MoveEnv, id: number, moves: RebalanceMoveRow[], summaries: Map<number, MoveSummary>): Promise<RebalanceMoveRow[]> {
  const jobs = await listJobs(env.pools.catalog, {shards: moves.map((m) => m.shard)})
  const map = await readShardMap(env.pools.catalog)
  const out: RebalanceMoveRow[] = []
  for (const m of moves) {
    const s = summaries.get(m.shard)!
    const job = m.jobId !== null ? jobs.find((j) => j.id === m.jobId) : latestJob(jobs, m)
    if (isDone(m.outcome)) {
      s.freezeMs = job?.freezeMs ?? null
      continue
    }
    const onTarget = map.shards.find((x) => x.shard === m.shard)?.server === m.target
    if (job && (job.status === 'flipped' || job.status === 'completed') && onTarget) {
      const outcome = job.status === 'completed' ? 'completed' : 'moved'
      await setMove(env.pools.catalog, id, m.shard, {outcome, jobId: job.id, error: null})
      Object.assign(s, {outcome, earlier: true, jobId: job.id, freezeMs: job.freezeMs})
      continue
    }
    out.push(m)
  }
  return out
}

function latestJob(jobs: MoveJob[], m: RebalanceMoveRow): MoveJob | undefined {
  return jobs.filter((j) => j.shard === m.shard && j.source === m.source && j.target === m.target).at(-1)
}

/** One planned move through moveShard (and completeMove with --complete); returns its outcome. */
async function moveOne(env: MoveEnv, id: number, m: RebalanceMoveRow, complete: boolean, s: MoveSummary, hooks: RebalanceHooks): Promise<MoveOutcome> {
  const catalog = env.pools.catalog
  const started = performance.now()
  await setMove(catalog, id, m.shard, {outcome: 'running', started: true, error: null})
  hooks.onMove?.(m.shard, 'starting')
  try {
    const live = (await listJobs(catalog, {shards: [m.shard], liveOnly: true}))[0]
    if (live?.status === 'flipped' && live.target === m.target) {
      // Switched by an earlier run that died before it recorded it.
      s.jobId = live.id
      s.freezeMs = live.freezeMs
    } else {
      const r = await moveShard(env, m.shard, m.target, {
        onPhase: (phase, t) => hooks.onMove?.(m.shard, t === phase || !t ? phase : `${phase}: ${t}`),
        ...(hooks.signal ? {signal: hooks.signal} : {}),
      })
      s.jobId = r.job.id
      s.freezeMs = r.facts.freezeMs ?? null
      for (const p of r.phases) s.phases[p.phase] = Math.round(p.ms * 10) / 10
      if (!r.ok) {
        const interrupted = r.error === 'interrupted'
        return finish(interrupted ? 'interrupted' : 'failed', interrupted ? 'interrupted (resumable)' : (r.error ?? 'failed'))
      }
    }
    if (complete) {
      hooks.onMove?.(m.shard, 'complete: dropping the old copy')
      const t0 = performance.now()
      await completeMove(env, m.shard)
      s.phases.complete = Math.round((performance.now() - t0) * 10) / 10
      return finish('completed', `completed${s.freezeMs === null ? '' : `; writes held ${s.freezeMs.toFixed(1)} ms`}`)
    }
    return finish('moved', `moved${s.freezeMs === null ? '' : `; writes held ${s.freezeMs.toFixed(1)} ms`}`)
  } catch (err) {
    return finish('failed', errorText(err))
  }

  async function finish(o: MoveOutcome, t: string): Promise<MoveOutcome> {
    s.outcome = o
    s.error = o === 'failed' || o === 'interrupted' ? t : null
    s.ms = Math.round(performance.now() - started)
    await setMove(catalog, id, m.shard, {outcome: o, ...(s.jobId === null ? {} : {jobId: s.jobId}), error: s.error}).catch(() => undefined)
    hooks.onMoveDone?.(m.shard, o === 'moved' || o === 'completed', t)
    return o
  }
}
