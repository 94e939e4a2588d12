import {readFileSync, renameSync, writeFileSync} from 'node:fs'

import {z} from 'zod'

import {UserError, errorText} from '../../errors.js'
import type {ShardMap} from '../catalog.js'
import {STRATEGIES, type PlannedMove, type RebalancePlan} from './plan.js'

const load = z.object({shards: z.number(), rows: z.number(), bytes: z.number()})
const planSchema = z.object({
  format: z.literal(1),
  mapVersion: z.number().int().nonnegative(),
  strategy: z.enum(STRATEGIES as [string, ...string[]]),
  threshold: z.number(),
  drain: z.array(z.string()),
  pinned: z.array(z.number().int()),
  maxMoves: z.number().int().nullable(),
  moves: z.array(
    z.object({
      shard: z.number().int().min(0).max(8191),
      from: z.string(),
      to: z.string(),
      rows: z.number(),
      bytes: z.number(),
      reason: z.enum(['drain', 'balance']),
    }),
  ),
  servers: z.array(
    z.object({server: z.string(), weight: z.number(), draining: z.boolean(), configured: z.boolean(), before: load, after: load}),
  ),
  notes: z.array(z.string()),
})

/** Writes the plan as JSON (aside, then renamed: a reader never sees half a plan). */
export function writePlanFile(file: string, plan: RebalancePlan): void {
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, `${JSON.stringify(plan, null, 2)}\n`)
  renameSync(tmp, file)
}

export function readPlanFile(file: string): RebalancePlan {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new UserError(`Cannot read the plan file ${file}: ${errorText(err)}.`, {fix: 'Pass --plan with a file written by `feedops shards plan --out FILE`.'})
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new UserError(`The plan file ${file} is not JSON: ${errorText(err)}.`, {fix: 'Make it again with `feedops shards plan --out FILE`.'})
  }
  const parsed = planSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new UserError(`The plan file ${file} is not a feedops plan (${issue.path.join('.') || 'top level'}: ${issue.message}).`, {
      fix: 'Make it again with `feedops shards plan --out FILE`.',
    })
  }
  const plan = parsed.data as RebalancePlan
  const shards = plan.moves.map((m) => m.shard)
  const twice = shards.filter((s, i) => shards.indexOf(s) !== i)
  if (twice.length > 0) {
    throw new UserError(`The plan file ${file} moves shard ${twice[0]} more than once.`, {fix: 'Make it again with `feedops shards plan --out FILE`.'})
  }
  return plan
}

export interface BrokenMove {
  move: PlannedMove
  why: string
}

/**
 * Whether each move of a plan still holds on the current map: its shard is still on `from` (or already on
 * `to`: done), active, not pinned, and both servers are configured. A plan made from the current map
 * version holds by definition; an older one holds only if every move does.
 */
export function brokenMoves(plan: RebalancePlan, map: ShardMap, servers: readonly string[], pinned: readonly number[]): BrokenMove[] {
  const out: BrokenMove[] = []
  for (const move of plan.moves) {
    const entry = map.shards.find((s) => s.shard === move.shard)
    const why = !entry
      ? 'the shard is not in the map'
      : pinned.includes(move.shard)
        ? 'the shard is pinned now'
        : !servers.includes(move.from)
          ? `${move.from} is not in env.shards.servers`
          : !servers.includes(move.to)
            ? `${move.to} is not in env.shards.servers`
            : entry.server !== move.from && entry.server !== move.to
              ? `the shard is on ${entry.server} now`
              : undefined
    if (why) out.push({move, why})
  }
  return out
}

/**
 * Refuses a plan any of whose moves no longer holds (naming each): a plan made from an older map version
 * is taken only when every move still holds, and a config changed since (a pin, a server removed) counts too.
 */
export function assertPlanHolds(plan: RebalancePlan, map: ShardMap, servers: readonly string[], pinned: readonly number[]): void {
  const broken = brokenMoves(plan, map, servers, pinned)
  if (broken.length === 0) return
  const list = broken.map((b) => `shard ${b.move.shard} ${b.move.from}→${b.move.to} (${b.why})`).join('; ')
  const since = plan.mapVersion === map.version ? 'the config changed since' : `the map is at version ${map.version} now`
  throw new UserError(
    `The plan was made from map version ${plan.mapVersion}, ${since}, and ${broken.length} of its ${plan.moves.length} moves no longer hold: ${list}. Nothing was moved.`,
    {fix: 'Make a new plan with `feedops shards plan --out FILE` (or run `feedops shards rebalance` with the plan flags).'},
  )
}
