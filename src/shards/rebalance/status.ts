import type pg from 'pg'

import {ExitCode, UserError} from '../../errors.js'
import {listJobs} from '../move/jobs.js'
import {ensureRebalanceTables, latestRebalance, rebalanceMoves, runnerAlive, setRebalance, type RebalanceRow} from './store.js'

/** `shards rebalance --status`: the open (else the newest) rebalance, each move with its job's phase. Read-only. */
export interface StatusMove {
  shard: number
  from: string
  to: string
  outcome: string
  jobId: number | null
  /** The job's phase and status now (a move in flight shows where it is). */
  phase: string | null
  jobStatus: string | null
  freezeMs: number | null
  startedAt: string | null
  finishedAt: string | null
  error: string | null
}

export interface RebalanceStatusReport {
  rebalance: Omit<RebalanceRow, 'plan'> & {mapVersion: number; strategy: string; drain: string[]} | null
  /** Some process runs it now (holds the runner's lock). */
  running: boolean
  moves: StatusMove[]
  counts: {total: number; done: number; running: number; failed: number; left: number}
}

export async function rebalanceStatus(catalog: pg.Pool): Promise<RebalanceStatusReport> {
  const row = await latestRebalance(catalog)
  const running = await runnerAlive(catalog)
  if (!row) return {rebalance: null, running, moves: [], counts: {total: 0, done: 0, running: 0, failed: 0, left: 0}}
  const moves = await rebalanceMoves(catalog, row.id)
  const jobs = await listJobs(catalog, {shards: moves.map((m) => m.shard)}).catch(() => [])
  const out: StatusMove[] = moves.map((m) => {
    // While a move runs its job id is not recorded yet: its shard's newest job to that target since it started.
    const since = m.startedAt ? Date.parse(m.startedAt) - 1000 : Infinity
    const job =
      m.jobId !== null
        ? jobs.find((j) => j.id === m.jobId)
        : jobs.filter((j) => j.shard === m.shard && j.target === m.target && Date.parse(j.createdAt) >= since).at(-1)
    return {
      shard: m.shard,
      from: m.source,
      to: m.target,
      outcome: m.outcome,
      jobId: job?.id ?? m.jobId,
      phase: job?.phase ?? null,
      jobStatus: job?.status ?? null,
      freezeMs: job?.freezeMs ?? null,
      startedAt: m.startedAt,
      finishedAt: m.finishedAt,
      error: m.error,
    }
  })
  const done = out.filter((m) => m.outcome === 'moved' || m.outcome === 'completed').length
  const inFlight = out.filter((m) => m.outcome === 'running').length
  const failed = out.filter((m) => m.outcome === 'failed').length
  const {plan, ...rest} = row
  return {
    rebalance: {...rest, mapVersion: plan.mapVersion, strategy: plan.strategy, drain: plan.drain},
    running,
    moves: out,
    counts: {total: out.length, done, running: running ? inFlight : 0, failed, left: out.length - done},
  }
}

/** `--stop`: the runner lets the moves in flight finish and starts no new one. */
export async function stopRebalance(client: pg.ClientBase): Promise<{id: number; running: boolean}> {
  await ensureRebalanceTables(client)
  const open = await latestRebalance(client, {openOnly: true})
  if (!open) throw new UserError('No rebalance is running or unfinished.', {fix: 'See `feedops shards rebalance --status`.', exitCode: ExitCode.nothingDone})
  const running = await runnerAlive(client)
  await setRebalance(client, open.id, running ? {stopRequested: true} : {status: open.status === 'running' ? 'stopped' : open.status})
  return {id: open.id, running}
}

/** `--abandon`: an unfinished rebalance that nobody runs is closed; its moves not yet made stay unmade. */
export async function abandonRebalance(client: pg.ClientBase): Promise<{id: number; left: number}> {
  await ensureRebalanceTables(client)
  const open = await latestRebalance(client, {openOnly: true})
  if (!open) throw new UserError('No rebalance is unfinished.', {fix: 'See `feedops shards rebalance --status`.', exitCode: ExitCode.nothingDone})
  if (await runnerAlive(client)) {
    throw new UserError(`Rebalance ${open.id} is running (owner ${open.owner ?? 'unknown'}).`, {
      fix: 'Stop it first with `feedops shards rebalance --stop`, wait for it to end, then abandon it.',
      exitCode: ExitCode.nothingDone,
    })
  }
  const left = (await rebalanceMoves(client, open.id)).filter((m) => m.outcome !== 'moved' && m.outcome !== 'completed').length
  await setRebalance(client, open.id, {status: 'abandoned'})
  return {id: open.id, left}
}
