import {isUserError, errorText, ExitCode} from '../errors.js'
import type {LbContext} from './context.js'
import {runPass, type ActionReport, type PassResult} from './pass.js'
import {sleep} from './state/store.js'

export interface WatchOptions {
  intervalS: number
  signal: AbortSignal
  /** Stop after this many passes (tests, benchmarks); default: until interrupted. */
  maxPasses?: number
  onPass(r: PassResult): void
  /** A pass that could not run (lock held, API down): reported, and the next pass tries again. */
  onError(message: string, exitCode: number): void
  onAction?: (a: ActionReport) => void
  onProgress?: (text: string) => void
}

export interface WatchResult {
  passes: number
  /** Passes that ended as wanted (exit 0). */
  wanted: number
  /** Passes that could not run. */
  errors: number
  interrupted: boolean
}

/**
 * `lb watch`: a pass every intervalS seconds (start to start; a pass that runs longer is followed at once),
 * each one exactly `lb rotate`'s, under the same lock. An interrupt lets the pass under way finish its
 * action (see runPass) and starts no other.
 */
export async function watch(ctx: LbContext, opts: WatchOptions): Promise<WatchResult> {
  const result: WatchResult = {passes: 0, wanted: 0, errors: 0, interrupted: false}
  while (!opts.signal.aborted && (opts.maxPasses === undefined || result.passes < opts.maxPasses)) {
    const started = performance.now()
    result.passes++
    try {
      const r = await runPass(ctx, {dryRun: false, what: 'watch', signal: opts.signal, ...(opts.onAction ? {onAction: opts.onAction} : {}), ...(opts.onProgress ? {onProgress: opts.onProgress} : {})})
      if (r.wanted) result.wanted++
      opts.onPass(r)
    } catch (err) {
      // A bug is still a bug, and bad config (exit 2: no such load balancer, no credentials) will not mend
      // itself; anything else (lock held, API down, throttled) is this pass's, and the next one tries again.
      if (!isUserError(err) || err.exitCode === ExitCode.badInput) throw err
      result.errors++
      opts.onError(errorText(err) + (err.fix ? ` Fix: ${err.fix}` : ''), err.exitCode)
    }
    const waitMs = opts.intervalS * 1000 - (performance.now() - started)
    if (waitMs > 0 && (opts.maxPasses === undefined || result.passes < opts.maxPasses)) await sleep(waitMs, opts.signal)
  }
  result.interrupted = opts.signal.aborted
  return result
}
