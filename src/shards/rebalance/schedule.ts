/**
 * Which planned move may start now: the first pending one (in plan order) whose source and target each
 * have fewer than `perServer` moves in flight on that side, whose server pair has not failed, while fewer
 * than `concurrency` moves run across the fleet. Pure, so the limits are tested without a server.
 */
export interface MoveSlot {
  shard: number
  from: string
  to: string
}

export interface ScheduleLimits {
  /** Moves in flight across the fleet; null: bounded only by the per-server limit. */
  concurrency: number | null
  /** Moves in flight per source server, and per target server (default 1). */
  perServer: number
}

export const pairKey = (m: Pick<MoveSlot, 'from' | 'to'>): string => `${m.from}→${m.to}`

export function nextMove<M extends MoveSlot>(pending: readonly M[], inFlight: readonly MoveSlot[], failedPairs: ReadonlySet<string>, limits: ScheduleLimits): M | undefined {
  if (limits.concurrency !== null && inFlight.length >= limits.concurrency) return undefined
  const from = new Map<string, number>()
  const to = new Map<string, number>()
  for (const m of inFlight) {
    from.set(m.from, (from.get(m.from) ?? 0) + 1)
    to.set(m.to, (to.get(m.to) ?? 0) + 1)
  }
  return pending.find(
    (m) => !failedPairs.has(pairKey(m)) && (from.get(m.from) ?? 0) < limits.perServer && (to.get(m.to) ?? 0) < limits.perServer && !inFlight.some((f) => f.shard === m.shard),
  )
}
