/**
 * One interface over the load balancers feedops rotates nodes in: Classic ELB (instances) and ELBv2
 * target groups (targets). Everything above it (the policy, the pass, drains) speaks in target ids and
 * the normalized states below, so the same rotation runs against either.
 */

/** The load balancer's view of a target, normalized across providers. */
export type MemberState = 'InService' | 'OutOfService' | 'Unknown' | 'Draining'

export interface Member {
  /** Instance id (Classic, ELBv2 instance targets) or address (ELBv2 ip targets). */
  id: string
  state: MemberState
  /** The provider's own words: Classic's State, ELBv2's TargetHealth.State (healthy, initial…). */
  rawState: string
  /** Classic's ReasonCode (ELB | Instance | N/A), ELBv2's Reason (Target.FailedHealthChecks…). */
  reasonCode?: string
  description?: string
}

export interface LbProvider {
  readonly kind: 'classic' | 'elbv2'
  /** For messages: "Classic ELB feed-lab", "target group feed/0123…". */
  readonly label: string
  /** Every registered target with its health (a target draining out is listed as Draining). */
  members(): Promise<Member[]>
  /**
   * These targets, registered or not: the way to see one still draining after its deregistration (a
   * Classic ELB lists a deregistered instance only when asked for it by id).
   */
  health(ids: readonly string[]): Promise<Member[]>
  register(ids: readonly string[]): Promise<void>
  deregister(ids: readonly string[]): Promise<void>
  /** Connection draining (Classic) or deregistration delay (ELBv2), in seconds; 0 when off. */
  drainingSeconds(): Promise<number>
  close(): void
}

/** Whether a member still receives traffic or may again without a register call (Draining is on its way out). */
export function isRegistered(m: Member | undefined): boolean {
  return m !== undefined && m.state !== 'Draining'
}
