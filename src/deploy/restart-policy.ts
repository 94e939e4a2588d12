/**
 * When the release's process manager (src/deploy/pm.ts) starts an app again after it exited, as systemd's
 * `Restart=on-failure` with `RestartSec`, `RestartSteps`/`RestartMaxDelaySec` and `StartLimitBurst` within
 * `StartLimitIntervalSec` does (src/deploy/systemd.ts writes the same numbers into the unit): a failed exit
 * (non-zero code or a signal) is restarted after a delay that doubles with each exit in the interval, and
 * past the burst the manager gives up. A clean exit (code 0: the app drained on SIGTERM) is not restarted.
 * Every restart is a new pid, so a deploy's re-checks see a crash loop; it never looks healthy.
 */

export interface RestartPolicy {
  /** Delay before the first restart within the interval. */
  firstDelayMs: number
  /** The delay doubles per exit in the interval, up to this. */
  maxDelayMs: number
  /** Restarts allowed within intervalMs; one more exit and the manager gives up. */
  burst: number
  intervalMs: number
}

export const RESTART_POLICY: RestartPolicy = {firstDelayMs: 100, maxDelayMs: 5000, burst: 5, intervalMs: 60_000}

export type RestartDecision = {restart: true; delayMs: number} | {restart: false; why: string}

/**
 * What to do after an exit at `now`, given the times of the earlier failed exits (ms, any order). `code` and
 * `signal` are the exit's, as a child process reports them.
 */
export function afterExit(earlierExits: readonly number[], now: number, exit: {code: number | null; signal: string | null}, policy: RestartPolicy = RESTART_POLICY): RestartDecision {
  if (exit.code === 0 && !exit.signal) return {restart: false, why: 'it exited cleanly (code 0)'}
  const inWindow = earlierExits.filter((t) => now - t < policy.intervalMs).length + 1
  if (inWindow > policy.burst) {
    return {restart: false, why: `it failed ${inWindow} times within ${policy.intervalMs / 1000} s (burst limit ${policy.burst})`}
  }
  return {restart: true, delayMs: Math.min(policy.maxDelayMs, policy.firstDelayMs * 2 ** (inWindow - 1))}
}

/** "code 1" / "signal SIGKILL" */
export function exitText(exit: {code: number | null; signal: string | null}): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`
}
