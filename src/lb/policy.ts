import {isRegistered, type Member} from './provider.js'

/**
 * The rotation policy: a pure function of this pass's probes, the load balancer's view, the counts kept
 * from earlier passes and the drains by hand. It decides; src/lb/pass.ts acts.
 *
 * - Counts are consecutive: a passed probe adds a pass and zeroes the fails, a failed one the reverse.
 * - A registered node with failsOut consecutive fails is deregistered; a node out with passesIn
 *   consecutive passes is registered. One bad answer in between starts the count over, so a node that
 *   flaps never reaches either threshold.
 * - Panic (Envoy's panic threshold, ALB's fail-open): when every node not drained by hand fails at once,
 *   the probe or the network is the likelier culprit, so nothing changes and the pass says so loudly.
 * - Never fewer than minInService nodes registered; at most maxRemovePerRun deregistered per pass (the
 *   worst first).
 * - A node drained by hand is left as it is until it is restored. Members the load balancer lists that the
 *   inventory does not are reported and never touched (nor counted towards minInService).
 */

export interface NodeCounts {
  /** Consecutive passed probes. */
  passes: number
  /** Consecutive failed probes. */
  fails: number
}

export interface ManualDrain {
  /** user@machine */
  by: string
  /** ISO time. */
  at: string
  why: string
}

export interface PolicySettings {
  failsOut: number
  passesIn: number
  minInService: number
  maxRemovePerRun: number
}

export interface PolicyNode {
  /** The inventory's name. */
  name: string
  /** Its id at the load balancer (instance id or address). */
  id: string
  /** This pass's deep probe. */
  probeOk: boolean
}

export interface PolicyInput {
  nodes: readonly PolicyNode[]
  members: readonly Member[]
  /** By node name, as kept after the previous pass (absent: none yet). */
  counts: Readonly<Record<string, NodeCounts>>
  drains: Readonly<Record<string, ManualDrain>>
  settings: PolicySettings
}

/**
 * - in: registered and staying; out: not registered and staying out (failing, or not yet passesIn passes);
 * - deregister / register: this pass's actions;
 * - held: should go out but a guard keeps it in (panic, minInService, maxRemovePerRun);
 * - drained: drained by hand, left alone.
 */
export type Decision = 'in' | 'out' | 'deregister' | 'register' | 'held' | 'drained'

export interface NodePlan {
  name: string
  id: string
  probeOk: boolean
  /** After this pass's probe. */
  counts: NodeCounts
  /** Registered at the load balancer before this pass's actions (Draining counts as not). */
  registered: boolean
  member: Member | undefined
  drain: ManualDrain | undefined
  decision: Decision
  /** Why, in a few words. */
  why: string
}

export interface PolicyAction {
  action: 'register' | 'deregister'
  name: string
  id: string
  why: string
}

export interface PolicyResult {
  nodes: NodePlan[]
  /** Deregistrations first. */
  actions: PolicyAction[]
  /** Kept counts after this pass, for the inventory's nodes only. */
  counts: Record<string, NodeCounts>
  /** Members the inventory does not know: reported, never touched. */
  unknown: Member[]
  /** Every node not drained by hand failed: nothing changed. */
  panic: boolean
  warnings: string[]
  /** Once the actions are done, every node not drained by hand is in and none is held: exit 0. */
  wanted: boolean
}

export function nextCounts(before: NodeCounts | undefined, ok: boolean): NodeCounts {
  const c = before ?? {passes: 0, fails: 0}
  return ok ? {passes: c.passes + 1, fails: 0} : {passes: 0, fails: c.fails + 1}
}

export function decide(input: PolicyInput): PolicyResult {
  const {settings: s} = input
  const byId = new Map(input.members.map((m) => [m.id, m]))
  const known = new Set(input.nodes.map((n) => n.id))
  const unknown = input.members.filter((m) => !known.has(m.id))
  const counts: Record<string, NodeCounts> = {}
  const warnings: string[] = []

  const plans: NodePlan[] = input.nodes.map((n) => {
    const c = nextCounts(input.counts[n.name], n.probeOk)
    counts[n.name] = c
    const member = byId.get(n.id)
    const registered = isRegistered(member)
    const drain = input.drains[n.name]
    const plan = {name: n.name, id: n.id, probeOk: n.probeOk, counts: c, registered, member, drain}
    if (drain) return {...plan, decision: 'drained', why: `drained by hand by ${drain.by}`}
    if (registered) {
      if (c.fails >= s.failsOut) return {...plan, decision: 'deregister', why: `failed ${c.fails} probes in a row`}
      return {...plan, decision: 'in', why: n.probeOk ? 'healthy' : `failed ${c.fails} of ${s.failsOut} probes before it goes out`}
    }
    if (c.passes >= s.passesIn) return {...plan, decision: 'register', why: `passed ${c.passes} probes in a row`}
    return {
      ...plan,
      decision: 'out',
      why: n.probeOk ? `passed ${c.passes} of ${s.passesIn} probes before it comes back` : `failing (${c.fails} in a row)`,
    }
  })

  const candidates = plans.filter((p) => !p.drain)
  const panic = candidates.length > 0 && candidates.every((p) => !p.probeOk)
  if (panic) {
    warnings.push(
      `Every node failed its probe (${candidates.length} of ${candidates.length}): changing nothing. The probe or the network is more likely broken than every node at once; check from this machine with curl.`,
    )
    for (const p of plans) {
      if (p.decision === 'deregister') Object.assign(p, {decision: 'held', why: `${p.why}, kept in: every node is failing`})
    }
  } else {
    // Worst first; the registered count falls with each removal and stays at or above minInService.
    let registered = plans.filter((p) => p.registered).length
    let removed = 0
    const out = plans.filter((p) => p.decision === 'deregister').sort((a, b) => b.counts.fails - a.counts.fails || a.name.localeCompare(b.name))
    for (const p of out) {
      if (registered - 1 < s.minInService) {
        Object.assign(p, {decision: 'held', why: `${p.why}, kept in: minInService is ${s.minInService} and ${registered} registered`})
        warnings.push(`${p.name} failed ${p.counts.fails} probes in a row but stays registered: taking it out would leave fewer than minInService (${s.minInService}).`)
      } else if (removed >= s.maxRemovePerRun) {
        Object.assign(p, {decision: 'held', why: `${p.why}, kept in: maxRemovePerRun (${s.maxRemovePerRun}) reached this pass`})
      } else {
        registered--
        removed++
      }
    }
  }
  if (unknown.length > 0) {
    warnings.push(`The load balancer lists ${unknown.length} target${unknown.length === 1 ? '' : 's'} the inventory does not know (${unknown.map((m) => m.id).join(', ')}): left alone.`)
  }

  const actions: PolicyAction[] = [
    ...plans.filter((p) => p.decision === 'deregister').map((p) => ({action: 'deregister' as const, name: p.name, id: p.id, why: p.why})),
    ...plans.filter((p) => p.decision === 'register').map((p) => ({action: 'register' as const, name: p.name, id: p.id, why: p.why})),
  ]
  const wanted = !panic && plans.every((p) => p.decision === 'in' || p.decision === 'register' || p.decision === 'drained')
  return {nodes: plans, actions, counts, unknown, panic, warnings, wanted}
}
