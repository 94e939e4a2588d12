import {Args, Flags} from '@oclif/core'

import {UserError} from '../errors.js'
import {MAX_SHARD, parseId} from '../shards/ids.js'

/**
 * Shard numbers and ids typed on the command line, read by the rule the app applies to ids in its URLs
 * (app/http/schemas.ts): decimal digits only, no sign, no leading zero, no spaces. `shards move 01` or
 * `shards move +1` is a typo, and a typo must not move shard 1. Every command that takes a shard number or
 * an id parses it here (as an argument or a flag, below).
 */

const DECIMAL = /^(0|[1-9][0-9]*)$/

/** A logical shard number, 0..8191; `what` names where it came from (`shard`, `--shard`). */
export function parseShardNumber(text: string, what = 'shard'): number {
  const fix = `Give the shard as a decimal number from 0 to ${MAX_SHARD}, without sign, spaces or leading zeros.`
  if (!DECIMAL.test(text)) throw new UserError(`${capital(what)} "${text}" is not a shard number.`, {fix})
  const n = Number(text)
  if (n > MAX_SHARD) throw new UserError(`${capital(what)} ${text} is out of range (0..${MAX_SHARD}).`, {fix})
  return n
}

/**
 * A 64-bit id, unsigned, in the one decimal form; also as Postgres shows the ids of after 2^40 ms (a minus
 * and the same canonical digits, see src/shards/ids.ts), because that is what `SELECT id` prints.
 */
export function parseIdText(text: string): bigint {
  const negative = text.startsWith('-')
  const digits = negative ? text.slice(1) : text
  if (!DECIMAL.test(digits) || (negative && digits === '0')) {
    throw new UserError(`Id "${text}" is not an id.`, {
      fix: 'Give the id as decimal digits without sign, spaces or leading zeros (or the negative number Postgres shows).',
    })
  }
  return parseId(text)
}

const capital = (s: string) => (s.startsWith('-') ? s : s[0]!.toUpperCase() + s.slice(1))

/** A shard-number argument: `shard: shardArg({required: true})`. */
export const shardArg = Args.custom<number>({
  description: `Logical shard number (0..${MAX_SHARD}).`,
  parse: async (text) => parseShardNumber(text),
})

/** --shard N. */
export const shardFlag = Flags.custom<number>({
  description: `Logical shard (0..${MAX_SHARD}).`,
  parse: async (text) => parseShardNumber(text, '--shard'),
})

/** An id argument. */
export const idArg = Args.custom<bigint>({parse: async (text) => parseIdText(text)})
