import type {ShardsSettings} from '../../config/schema.js'
import {UserError} from '../../errors.js'
import {DEFAULT_THRESHOLD, STRATEGIES, type PlanFlags, type Strategy} from './plan.js'

/** The plan flags as given on the command line (before defaults). */
export interface PlanFlagInput {
  strategy?: string
  drain?: string[]
  threshold?: number
  maxMoves?: number
}

/**
 * Checks the plan flags against the config and fills in the defaults; bad input is one UserError (exit 2)
 * before anything is read from a server.
 */
export function planFlags(input: PlanFlagInput, settings: Pick<ShardsSettings, 'servers'>): PlanFlags {
  const strategy = (input.strategy ?? 'bytes') as Strategy
  if (!STRATEGIES.includes(strategy)) {
    throw new UserError(`Unknown strategy "${input.strategy}".`, {fix: `Pass --strategy ${STRATEGIES.join(' or ')}.`})
  }
  const names = settings.servers.map((s) => s.name)
  const drain = [...new Set(input.drain ?? [])]
  const unknown = drain.filter((d) => !names.includes(d))
  if (unknown.length > 0) {
    throw new UserError(`--drain names ${unknown.join(', ')}, which ${unknown.length > 1 ? 'are' : 'is'} not in env.shards.servers (${names.join(', ')}).`, {
      fix: 'Pass --drain with configured server names.',
    })
  }
  if (drain.length >= names.length) {
    throw new UserError(`--drain would empty every server (${names.join(', ')}), leaving nowhere for the shards to go.`, {
      fix: 'Add a server to env.shards.servers first, or drain fewer servers.',
    })
  }
  const threshold = input.threshold ?? DEFAULT_THRESHOLD[strategy]
  if (!Number.isFinite(threshold) || threshold < 0 || threshold > 100) {
    throw new UserError(`--threshold ${threshold} is not a percentage from 0 to 100.`, {fix: 'Pass --threshold P with 0 ≤ P ≤ 100 (for example 10).'})
  }
  if (input.maxMoves !== undefined && (!Number.isInteger(input.maxMoves) || input.maxMoves < 1)) {
    throw new UserError(`--max-moves ${input.maxMoves} is not a positive whole number.`, {fix: 'Pass --max-moves N with N ≥ 1.'})
  }
  return {strategy, drain, threshold, ...(input.maxMoves === undefined ? {} : {maxMoves: input.maxMoves})}
}

/** env.shards.pinned, checked against the logical shard count. */
export function pinnedShards(settings: Pick<ShardsSettings, 'pinned' | 'logical'>, logical: number): number[] {
  const pinned = [...new Set(settings.pinned ?? [])].sort((a, b) => a - b)
  const bad = pinned.filter((p) => p >= logical)
  if (bad.length > 0) {
    throw new UserError(`env.shards.pinned names shard${bad.length > 1 ? 's' : ''} ${bad.join(', ')}, but the map has shards 0..${logical - 1}.`, {
      fix: 'Remove those numbers from shards.pinned in the config.',
    })
  }
  return pinned
}
