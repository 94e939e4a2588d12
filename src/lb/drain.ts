import {ExitCode, UserError} from '../errors.js'
import {findNode, type LbContext} from './context.js'
import {lockHeldError, waitDrained} from './pass.js'
import type {ManualDrain} from './policy.js'
import {probe, type ProbeResult} from './probe.js'
import {isRegistered} from './provider.js'
import {whoAmI} from './state/store.js'

/**
 * Maintenance by hand (`lb drain` / `lb restore`, and the playbooks that take nodes out one at a time).
 * Both hold the pass lock (waiting for a pass under way, at most lockWaitMs), so a cron pass never acts
 * on a node half-drained. The drain is recorded before the deregistration: a crash in between leaves a
 * node marked drained that `rotate` will not put back, never one rotate re-registers under the operator.
 */

export interface DrainResult {
  node: string
  id: string
  lb: string
  drain: ManualDrain
  /** It was registered and is now deregistered (false: it was already out). */
  deregistered: boolean
  /** --force passed the minInService guard. */
  forced: boolean
  drainedS: number
  drainComplete: boolean
  /** Already drained by hand before this call (the record is updated). */
  already: boolean
}

export interface RestoreResult {
  node: string
  id: string
  lb: string
  /** The drain that was lifted, if the node had one. */
  lifted: ManualDrain | undefined
  probe: ProbeResult
  /** Registered by this call; false when the probe failed (rotate brings it back after passesIn passes) or it already was. */
  registered: boolean
  alreadyRegistered: boolean
}

export interface ManualOptions {
  force?: boolean
  /** Default 30 s: long enough for a pass under way to finish. */
  lockWaitMs?: number
  signal?: AbortSignal
  onProgress?: (text: string) => void
}

export async function drainNode(ctx: LbContext, key: string, why: string, opts: ManualOptions = {}): Promise<DrainResult> {
  const node = findNode(ctx.nodes, key)
  const lock = await ctx.store.acquire(`drain ${node.name}`, opts.lockWaitMs ?? 30_000)
  if (!lock.ok) throw lockHeldError(lock.holder, ctx.store.where)
  try {
    const [members, state] = await Promise.all([ctx.provider.members(), ctx.store.read()])
    const known = new Set(ctx.nodes.map((n) => n.id))
    const registered = members.filter((m) => known.has(m.id) && isRegistered(m))
    const isIn = registered.some((m) => m.id === node.id)
    const forced = isIn && registered.length - 1 < ctx.lb.minInService
    if (forced && !opts.force) {
      throw new UserError(
        `Draining ${node.name} would leave ${registered.length - 1} node${registered.length - 1 === 1 ? '' : 's'} registered at ${ctx.provider.label}, fewer than minInService (${ctx.lb.minInService}).`,
        {fix: 'Restore or fix another node first, or pass --force to drain it anyway (the site may go down).', exitCode: ExitCode.failed},
      )
    }
    const already = state.drains[node.name] !== undefined
    const drain: ManualDrain = {by: whoAmI(), at: new Date().toISOString(), why: why || '(no reason given)'}
    await ctx.store.write({...state, drains: {...state.drains, [node.name]: drain}})
    let wait = {drainedS: 0, drainComplete: true}
    if (isIn) {
      await ctx.provider.deregister([node.id])
      const drainingS = await ctx.provider.drainingSeconds()
      wait = await waitDrained(ctx, node.id, Math.min(drainingS, ctx.lb.drainTimeoutS), opts)
    }
    return {node: node.name, id: node.id, lb: ctx.provider.label, drain, deregistered: isIn, forced, ...wait, already}
  } finally {
    await lock.lock.release()
  }
}

/**
 * Lifts a drain by hand and registers the node if its deep probe passes now; a node that fails stays out
 * with its drain lifted, and rotate registers it after passesIn passes like any other.
 */
export async function restoreNode(ctx: LbContext, key: string, opts: ManualOptions = {}): Promise<RestoreResult> {
  const node = findNode(ctx.nodes, key)
  const lock = await ctx.store.acquire(`restore ${node.name}`, opts.lockWaitMs ?? 30_000)
  if (!lock.ok) throw lockHeldError(lock.holder, ctx.store.where)
  try {
    const [members, state, probed] = await Promise.all([ctx.provider.members(), ctx.store.read(), probe(node, ctx.lb.probe.timeoutMs, opts.signal)])
    const lifted = state.drains[node.name]
    const {[node.name]: _lifted, ...drains} = state.drains
    const alreadyRegistered = isRegistered(members.find((m) => m.id === node.id))
    const before = state.counts[node.name] ?? {passes: 0, fails: 0, at: ''}
    const counts = probed.ok ? {passes: before.passes + 1, fails: 0} : {passes: 0, fails: before.fails + 1}
    const kept = {...counts, at: new Date().toISOString(), ...(probed.ok ? {} : {error: probed.error ?? 'failed'})}
    let registered = false
    if (probed.ok && !alreadyRegistered) {
      await ctx.provider.register([node.id])
      registered = true
    }
    await ctx.store.write({counts: {...state.counts, [node.name]: kept}, drains})
    return {node: node.name, id: node.id, lb: ctx.provider.label, lifted, probe: probed, registered, alreadyRegistered}
  } finally {
    await lock.lock.release()
  }
}
