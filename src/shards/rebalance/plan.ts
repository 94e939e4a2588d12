/**
 * The rebalance planner: a pure, deterministic function of the shard map, the size of every logical shard,
 * the configured servers and the flags. Same input, same plan, move for move.
 *
 * The algorithm is the greedy one of Citus's rebalancer (shard_rebalancer.c, FindAndMoveShardCost), on a
 * fleet of plain Postgres servers:
 *
 * 1. Drain: every shard on a drained server moves off it, largest first, each to the server that is least
 *    utilized at that point (utilization = cost / weight, a drained server's capacity is 0).
 * 2. Balance: while some server is outside the band of ±threshold around the mean utilization, move one
 *    shard from the most utilized server (then the next) to the least utilized one (then the next): the
 *    largest shard whose move leaves the target no more utilized than the source was, and whose gain is
 *    worth its size (the improvement threshold, so a huge shard is not moved for a small gain). Every move
 *    improves the balance, so a plan stopped half-way never leaves the fleet worse than it was.
 *
 * A shard moves at most once in a plan, and pinned shards never move.
 */

export type Strategy = 'bytes' | 'count'
export const STRATEGIES: readonly Strategy[] = ['bytes', 'count']

/** What a shard weighs: its bytes on disk (rows are shown, not planned on). */
export interface ShardSize {
  shard: number
  server: string
  rows: number
  bytes: number
}

export interface PlanServer {
  name: string
  /** Share of the data this server should hold, relative to the others (env.shards.servers[].weight). */
  weight: number
}

export interface PlanFlags {
  strategy: Strategy
  /** Servers to empty (they take part, with no capacity). */
  drain: string[]
  /** Percent: no move while every server is within this much of the mean. */
  threshold: number
  /** At most this many moves (drain moves first); undefined: no bound. */
  maxMoves?: number
}

export interface PlanInput {
  mapVersion: number
  servers: PlanServer[]
  shards: ShardSize[]
  pinned: number[]
  flags: PlanFlags
}

export interface PlannedMove {
  shard: number
  from: string
  to: string
  rows: number
  bytes: number
  /** Why: 'drain' (its server is drained) or 'balance'. */
  reason: 'drain' | 'balance'
}

export interface ServerLoad {
  shards: number
  rows: number
  bytes: number
}

export interface PlanServerSummary {
  server: string
  weight: number
  draining: boolean
  /** Not in env.shards.servers: its shards are shown but cannot move (a move needs both servers configured). */
  configured: boolean
  before: ServerLoad
  after: ServerLoad
}

export interface RebalancePlan {
  /** Format of this object, for plan files. */
  format: 1
  mapVersion: number
  strategy: Strategy
  threshold: number
  drain: string[]
  pinned: number[]
  maxMoves: number | null
  moves: PlannedMove[]
  servers: PlanServerSummary[]
  /** Things the plan could not do (a pinned shard on a drained server, the move bound reached…). */
  notes: string[]
}

/** The default --threshold per strategy, as Citus: bytes are never exactly even, counts can be. */
export const DEFAULT_THRESHOLD: Record<Strategy, number> = {bytes: 10, count: 0}
/** Citus's improvement_threshold: a move must gain at least this share of the utilization the shard adds. */
const IMPROVEMENT: Record<Strategy, number> = {bytes: 0.5, count: 0}

interface Fill {
  name: string
  order: number
  capacity: number
  cost: number
  shards: ShardSize[]
}

const utilization = (f: Fill, cost = f.cost): number => (f.capacity > 0 ? cost / f.capacity : cost > 0 ? Infinity : 0)

/** Most utilized first; ties by config order, so the plan never depends on a sort's whims. */
const byUtilizationDesc = (a: Fill, b: Fill) => utilization(b) - utilization(a) || a.order - b.order
const byUtilizationAsc = (a: Fill, b: Fill) => utilization(a) - utilization(b) || a.order - b.order

export function planRebalance(input: PlanInput): RebalancePlan {
  const {flags} = input
  const cost = (s: ShardSize) => (flags.strategy === 'count' ? 1 : Math.max(0, s.bytes))
  const byCostDesc = (a: ShardSize, b: ShardSize) => cost(b) - cost(a) || a.shard - b.shard
  const drained = new Set(flags.drain)
  const pinned = new Set(input.pinned)
  const configured = new Set(input.servers.map((s) => s.name))
  const shards = [...input.shards].sort((a, b) => a.shard - b.shard)

  const fills = new Map<string, Fill>()
  input.servers.forEach((s, order) => fills.set(s.name, {name: s.name, order, capacity: drained.has(s.name) ? 0 : s.weight, cost: 0, shards: []}))
  for (const s of shards) {
    const f = fills.get(s.server)
    if (!f) continue // not configured: it cannot take part in a move
    f.cost += cost(s)
    f.shards.push(s)
  }
  const all = [...fills.values()]
  const moves: PlannedMove[] = []
  const notes: string[] = []
  const moved = new Set<number>()
  const bound = flags.maxMoves ?? Infinity
  const movable = (s: ShardSize) => !pinned.has(s.shard) && !moved.has(s.shard)

  const apply = (s: ShardSize, from: Fill, to: Fill, reason: PlannedMove['reason']) => {
    from.shards = from.shards.filter((x) => x.shard !== s.shard)
    from.cost -= cost(s)
    to.shards.push(s)
    to.cost += cost(s)
    moved.add(s.shard)
    moves.push({shard: s.shard, from: from.name, to: to.name, rows: s.rows, bytes: s.bytes, reason})
  }

  // 1. Drain.
  const receivers = all.filter((f) => f.capacity > 0)
  for (const from of all.filter((f) => f.capacity === 0)) {
    for (const s of [...from.shards].sort(byCostDesc)) {
      if (pinned.has(s.shard)) {
        notes.push(`shard ${s.shard} is pinned, so it stays on ${from.name}, which is being drained`)
        continue
      }
      if (moves.length >= bound) break
      const to = [...receivers].sort((a, b) => utilization(a, a.cost + cost(s)) - utilization(b, b.cost + cost(s)) || a.order - b.order)[0]
      if (!to) {
        notes.push(`no server is left to take the shards of ${from.name}`)
        break
      }
      apply(s, from, to, 'drain')
    }
  }

  // 2. Balance, within the band around the mean.
  const totalCapacity = receivers.reduce((a, f) => a + f.capacity, 0)
  const totalCost = receivers.reduce((a, f) => a + f.cost, 0)
  const mean = totalCapacity > 0 ? totalCost / totalCapacity : 0
  const lower = (1 - flags.threshold / 100) * mean
  const upper = (1 + flags.threshold / 100) * mean
  const improvement = IMPROVEMENT[flags.strategy]
  const step = (): boolean => {
    for (const source of [...receivers].sort(byUtilizationDesc)) {
      if (utilization(source) <= lower) return false
      for (const target of [...receivers].sort(byUtilizationAsc)) {
        if (target === source) continue
        if (utilization(target) >= upper) break
        if (utilization(target) >= lower && utilization(source) <= upper) break
        for (const s of [...source.shards].filter(movable).sort(byCostDesc)) {
          const newTarget = utilization(target, target.cost + cost(s))
          const newSource = utilization(source, source.cost - cost(s))
          if (newTarget <= newSource) {
            apply(s, source, target, 'balance')
            return true
          }
          if (newTarget > utilization(source)) continue
          if (newTarget === utilization(source) && newSource <= utilization(target)) continue
          const gain = Math.max(utilization(source) - newTarget, newSource - utilization(target))
          const added = Math.min(newTarget - utilization(target), utilization(source) - newSource)
          if (added > 0 && gain / added < improvement) continue
          apply(s, source, target, 'balance')
          return true
        }
      }
    }
    return false
  }
  let more = receivers.length > 1
  while (more && moves.length < bound) more = step()
  if (more && moves.length >= bound) notes.push(`stopped at --max-moves ${bound}; plan again after this run for a better balance`)

  for (const s of shards) {
    if (!configured.has(s.server)) notes.push(`shard ${s.shard} is on ${s.server}, which is not in env.shards.servers: it stays`)
  }
  return {
    format: 1,
    mapVersion: input.mapVersion,
    strategy: flags.strategy,
    threshold: flags.threshold,
    drain: [...flags.drain],
    pinned: [...pinned].sort((a, b) => a - b),
    maxMoves: flags.maxMoves ?? null,
    moves,
    servers: summarize(input, shards, moves),
    notes,
  }
}

/** Per server (config order, then any server only the map names): its load before and after the moves. */
export function summarize(input: Pick<PlanInput, 'servers' | 'flags'>, shards: ShardSize[], moves: Pick<PlannedMove, 'shard' | 'to'>[]): PlanServerSummary[] {
  const dest = new Map(moves.map((m) => [m.shard, m.to]))
  const names = input.servers.map((s) => s.name)
  for (const s of shards) if (!names.includes(s.server)) names.push(s.server)
  const load = (pick: (s: ShardSize) => string, server: string): ServerLoad => {
    const mine = shards.filter((s) => pick(s) === server)
    return {shards: mine.length, rows: mine.reduce((a, s) => a + s.rows, 0), bytes: mine.reduce((a, s) => a + s.bytes, 0)}
  }
  return names.map((server) => {
    const conf = input.servers.find((s) => s.name === server)
    return {
      server,
      weight: conf?.weight ?? 0,
      draining: input.flags.drain.includes(server),
      configured: conf !== undefined,
      before: load((s) => s.server, server),
      after: load((s) => dest.get(s.shard) ?? s.server, server),
    }
  })
}
