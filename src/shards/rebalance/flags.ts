import {Flags} from '@oclif/core'

import {STRATEGIES} from './plan.js'

/** The plan flags, shared by `shards plan` and `shards rebalance`. */
export const planFlagDefs = {
  strategy: Flags.string({description: 'What to even out: bytes on disk (default) or the count of logical shards.', options: [...STRATEGIES]}),
  drain: Flags.string({description: 'Move every shard off this server (repeatable).', multiple: true}),
  'max-moves': Flags.integer({description: 'At most this many moves (drain moves first).', min: 1}),
  threshold: Flags.integer({description: 'Move nothing while every server is within this percentage of the mean (default 10 for bytes, 0 for count).', min: 0, max: 100}),
}

export const planFlagsGiven = (f: {strategy?: string; drain?: string[]; 'max-moves'?: number; threshold?: number}): boolean =>
  f.strategy !== undefined || (f.drain?.length ?? 0) > 0 || f['max-moves'] !== undefined || f.threshold !== undefined

export const planFlagInput = (f: {strategy?: string; drain?: string[]; 'max-moves'?: number; threshold?: number}) => ({
  ...(f.strategy === undefined ? {} : {strategy: f.strategy}),
  ...(f.drain === undefined ? {} : {drain: f.drain}),
  ...(f['max-moves'] === undefined ? {} : {maxMoves: f['max-moves']}),
  ...(f.threshold === undefined ? {} : {threshold: f.threshold}),
})
