import {loadConfig, resolveConfigPath} from '../config/load.js'
import {UserError} from '../errors.js'
import {DEFAULT_EPOCH, epochMs} from './ids.js'

export interface ResolvedEpoch {
  iso: string
  ms: bigint
  source: 'flag' | 'config' | 'default'
}

/**
 * The id epoch for `ids` commands: --epoch, else env.shards.epoch of the config when one is found
 * (an explicit --config/$FEEDOPS_CONFIG must exist and be valid), else the default 2011-01-01.
 */
export function resolveEpoch(opts: {epochFlag?: string; config?: string; env?: string}): ResolvedEpoch {
  if (opts.epochFlag !== undefined) {
    const ms = Date.parse(opts.epochFlag)
    if (!/^\d{4}-\d{2}-\d{2}/.test(opts.epochFlag) || Number.isNaN(ms)) {
      throw new UserError(`--epoch "${opts.epochFlag}" is not an ISO time.`, {fix: 'Pass e.g. --epoch 2011-01-01T00:00:00Z.'})
    }
    return {iso: new Date(ms).toISOString(), ms: BigInt(ms), source: 'flag'}
  }
  const explicit = opts.config !== undefined || process.env.FEEDOPS_CONFIG !== undefined
  let found = explicit
  if (!explicit) {
    try {
      resolveConfigPath()
      found = true
    } catch {
      found = false
    }
  }
  if (found) {
    const epoch = loadConfig({flag: opts.config, environment: opts.env}).env.shards?.epoch
    if (epoch) return {iso: new Date(Number(epochMs(epoch))).toISOString(), ms: epochMs(epoch), source: 'config'}
  }
  return {iso: new Date(Number(epochMs(DEFAULT_EPOCH))).toISOString(), ms: epochMs(DEFAULT_EPOCH), source: 'default'}
}
