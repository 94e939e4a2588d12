import {ExitCode, UserError, errorText} from '../errors.js'
import type {LbContext, LbNode} from './context.js'
import {decide, type Decision, type ManualDrain, type PolicyResult} from './policy.js'
import {probeAll, type ProbeResult} from './probe.js'
import {isRegistered, type Member} from './provider.js'
import {sleep, type KeptCounts, type LbState, type LockInfo} from './state/store.js'

/**
 * One rotation pass (`lb rotate`, each turn of `lb watch`): under the lock, probe every node and read
 * the load balancer's view at once, let the policy decide, keep the counts, then act one node at a time.
 * A deregistration is reported done once the load balancer's connection draining is over (bounded by
 * lb.drainTimeoutS). On interrupt no new action starts; the one under way finishes (an API call is never
 * cut in half) and its draining wait ends early, said as such.
 */

export interface NodeReport {
  name: string
  address: string
  id: string
  probe: ProbeResult
  counts: {passes: number; fails: number}
  /** The load balancer's view before this pass acted; undefined: not registered. */
  elb: Member | undefined
  drain: ManualDrain | undefined
  decision: Decision
  why: string
}

export interface ActionReport {
  action: 'register' | 'deregister'
  node: string
  id: string
  why: string
  ok: boolean
  error?: string
  /** Deregistrations: seconds waited for connection draining, and whether it was over (not cut short by the bound or an interrupt). */
  drainedS?: number
  drainComplete?: boolean
}

export interface PassResult {
  lb: string
  dryRun: boolean
  nodes: NodeReport[]
  actions: ActionReport[]
  /** Members the inventory does not know: reported, never touched. */
  unknown: Member[]
  panic: boolean
  warnings: string[]
  /** The fleet is as wanted once the actions are done (exit 0). */
  wanted: boolean
  interrupted: boolean
  exitCode: number
  summary: string
  durationMs: number
}

/** What a pass sees before it decides: the probes, the load balancer's members, the kept state. */
export interface Observation {
  probes: ProbeResult[]
  members: Member[]
  state: LbState
}

export async function observe(ctx: LbContext, signal?: AbortSignal): Promise<Observation> {
  const [probes, members, state] = await Promise.all([probeAll(ctx.nodes, ctx.lb.probe.timeoutMs, signal), ctx.provider.members(), ctx.store.read()])
  return {probes, members, state}
}

export function policyOf(ctx: LbContext, obs: Observation): PolicyResult {
  return decide({
    nodes: ctx.nodes.map((n, i) => ({name: n.name, id: n.id, probeOk: obs.probes[i]!.ok})),
    members: obs.members,
    counts: obs.state.counts,
    drains: obs.state.drains,
    settings: ctx.lb,
  })
}

/** The state after this pass's probes: new counts (with when and why), the drains as they were. */
export function stateAfter(ctx: LbContext, obs: Observation, policy: PolicyResult, at = new Date().toISOString()): LbState {
  const counts: Record<string, KeptCounts> = {}
  ctx.nodes.forEach((n, i) => {
    const p = obs.probes[i]!
    counts[n.name] = {...policy.counts[n.name]!, at, ...(p.ok ? {} : {error: p.error ?? 'failed'})}
  })
  return {counts, drains: obs.state.drains}
}

export function nodeReports(ctx: LbContext, obs: Observation, policy: PolicyResult): NodeReport[] {
  return policy.nodes.map((p, i) => {
    const n = ctx.nodes[i]!
    return {name: n.name, address: n.address, id: n.id, probe: obs.probes[i]!, counts: p.counts, elb: p.member, drain: p.drain, decision: p.decision, why: p.why}
  })
}

export function lockHeldError(holder: LockInfo | undefined, where: string): UserError {
  const who = holder ? `${holder.by} (pid ${holder.pid}, ${holder.what}, since ${holder.since})` : 'another process'
  return new UserError(`Another lb pass holds the lock: ${who}; ${where}.`, {
    fix: 'Nothing to do: that pass acts for this one. If its process is gone, the lock is taken over once lb.lockStaleSeconds have passed.',
    exitCode: ExitCode.nothingDone,
  })
}

export interface PassOptions {
  dryRun: boolean
  signal?: AbortSignal
  /** What the lock says this pass is: rotate, watch. */
  what: string
  /** One line per action as it completes, for logs and the TTY. */
  onAction?: (a: ActionReport) => void
  /** Progress while waiting out draining. */
  onProgress?: (text: string) => void
}

export async function runPass(ctx: LbContext, opts: PassOptions): Promise<PassResult> {
  const start = performance.now()
  const lock = opts.dryRun ? undefined : await ctx.store.acquire(opts.what)
  if (lock && !lock.ok) throw lockHeldError(lock.holder, ctx.store.where)
  try {
    const obs = await observe(ctx, opts.signal)
    const policy = policyOf(ctx, obs)
    const interrupted = () => opts.signal?.aborted === true
    const base = {lb: ctx.provider.label, dryRun: opts.dryRun, unknown: policy.unknown, panic: policy.panic, warnings: policy.warnings}
    // Probes cut short by an interrupt say nothing about the nodes: keep no counts, take no action.
    if (interrupted()) return finish({...base, nodes: nodeReports(ctx, obs, policy), actions: [], wanted: false, interrupted: true}, start)
    if (!opts.dryRun) await ctx.store.write(stateAfter(ctx, obs, policy))

    const actions: ActionReport[] = []
    if (opts.dryRun) {
      for (const a of policy.actions) actions.push({action: a.action, node: a.name, id: a.id, why: a.why, ok: true})
    } else {
      let drainingS: number | undefined
      for (const a of policy.actions) {
        if (interrupted()) break
        const report: ActionReport = {action: a.action, node: a.name, id: a.id, why: a.why, ok: true}
        try {
          if (a.action === 'register') await ctx.provider.register([a.id])
          else {
            await ctx.provider.deregister([a.id])
            drainingS ??= await ctx.provider.drainingSeconds()
            Object.assign(report, await waitDrained(ctx, a.id, Math.min(drainingS, ctx.lb.drainTimeoutS), opts))
          }
        } catch (err) {
          Object.assign(report, {ok: false, error: errorText(err)})
        }
        actions.push(report)
        opts.onAction?.(report)
      }
    }
    const allOk = actions.every((a) => a.ok) && actions.length === policy.actions.length
    return finish({...base, nodes: nodeReports(ctx, obs, policy), actions, wanted: policy.wanted && allOk, interrupted: interrupted()}, start)
  } finally {
    if (lock?.ok) await lock.lock.release()
  }
}

/**
 * After a deregistration: until the load balancer no longer lists the target as draining, at most
 * boundS seconds (0: draining is off, nothing to wait for), polled once a second.
 */
export async function waitDrained(
  ctx: LbContext,
  id: string,
  boundS: number,
  opts: Pick<PassOptions, 'signal' | 'onProgress'>,
): Promise<{drainedS: number; drainComplete: boolean}> {
  const start = performance.now()
  const elapsed = () => Math.round((performance.now() - start) / 100) / 10
  if (boundS <= 0) return {drainedS: 0, drainComplete: true}
  for (;;) {
    const m = (await ctx.provider.health([id])).find((x) => x.id === id)
    if (!m || m.state !== 'Draining') return {drainedS: elapsed(), drainComplete: true}
    if (opts.signal?.aborted || elapsed() >= boundS) return {drainedS: elapsed(), drainComplete: false}
    opts.onProgress?.(`${id}: draining connections (${Math.floor(elapsed())} of at most ${boundS} s)`)
    await sleep(Math.min(1000, Math.max(50, (boundS - elapsed()) * 1000)), opts.signal)
    // Interrupted: the deregistration is done, the load balancer finishes the draining by itself.
    if (opts.signal?.aborted) return {drainedS: elapsed(), drainComplete: false}
  }
}

function finish(r: Omit<PassResult, 'exitCode' | 'summary' | 'durationMs'>, start: number): PassResult {
  const exitCode = r.interrupted ? ExitCode.interrupted : r.wanted ? ExitCode.ok : ExitCode.failed
  return {...r, exitCode, summary: summarize(r), durationMs: Math.round(performance.now() - start)}
}

function summarize(r: Omit<PassResult, 'exitCode' | 'summary' | 'durationMs'>): string {
  // Registered once the actions are done (as planned; a failed action is counted below).
  const inService = r.nodes.filter((n) => n.decision === 'register' || (isRegistered(n.elb) && n.decision !== 'deregister'))
  const failedActions = r.actions.filter((a) => !a.ok)
  const done = (kind: 'register' | 'deregister') => r.actions.filter((a) => a.ok && a.action === kind).length
  const out = r.nodes.filter((n) => n.decision === 'out' || n.decision === 'deregister').map((n) => n.name)
  const drained = r.nodes.filter((n) => n.decision === 'drained').map((n) => n.name)
  const held = r.nodes.filter((n) => n.decision === 'held').map((n) => n.name)
  const verb = r.dryRun ? 'would ' : ''
  const parts = [
    `${r.lb}: ${r.nodes.length} node${r.nodes.length === 1 ? '' : 's'}, ${inService.length} registered`,
    `${verb}${r.dryRun ? 'deregister' : 'deregistered'} ${done('deregister')}, ${verb}${r.dryRun ? 'register' : 'registered'} ${done('register')}`,
    ...(out.length ? [`out: ${out.join(', ')}`] : []),
    ...(drained.length ? [`drained by hand: ${drained.join(', ')}`] : []),
    ...(held.length ? [`failing but kept in: ${held.join(', ')}`] : []),
    ...(failedActions.length ? [`${failedActions.length} action${failedActions.length === 1 ? '' : 's'} failed`] : []),
    ...(r.unknown.length ? [`${r.unknown.length} unknown target${r.unknown.length === 1 ? '' : 's'} left alone`] : []),
  ]
  const head = r.interrupted ? 'interrupted' : r.panic ? 'EVERY NODE FAILING, nothing changed' : r.wanted ? 'ok' : 'attention'
  return `${head}: ${parts.join('; ')}`
}

export type {LbNode}
