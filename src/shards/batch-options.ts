import {UserError} from '../errors.js'

/**
 * The batch size and per-server concurrency of a streaming rebuild from Postgres (photo map, counts),
 * checked the same way for each; `unit` says what one batch holds ("photos per page").
 */
export function validateBatchOptions(
  opts: {batch?: number; concurrency?: number},
  defaults: {batch: number; unit: string},
): {batch: number; concurrency: number} {
  const batch = opts.batch ?? defaults.batch
  const concurrency = opts.concurrency ?? 2
  if (!Number.isInteger(batch) || batch < 100 || batch > 100_000) {
    throw new UserError(`--batch ${batch} is out of range (100..100000).`, {fix: `Pass --batch between 100 and 100000 ${defaults.unit}.`})
  }
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 16) {
    throw new UserError(`--concurrency ${concurrency} is out of range (1..16).`, {fix: 'Pass --concurrency between 1 and 16.'})
  }
  return {batch, concurrency}
}
