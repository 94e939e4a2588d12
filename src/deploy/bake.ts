import type {DeployContext} from './context.js'
import {askAgain, type HealthAnswer} from './gate.js'
import type {HostState} from './remote.js'

/**
 * The re-check behind the contract "deploy exits 0 only if, at its end, every host it updated serves the new
 * release from the process its gate saw": asked every second from its gate on (src/deploy/strategy.ts
 * rollOut runs it in the background, after each batch, through the bake and once at the end), a host must
 * answer 200, report the release, and the same pid. A new pid is a crash the supervisor restarted; no answer
 * is a crash it has not (yet). An answer that is not a new pid is asked again (gate.ts askAgain), so a single
 * slow answer on a loaded host does not roll a fleet back.
 *
 * The defaults: the canary is watched 15 s (deploy.health.canaryStableMs) before any other host switches,
 * and the whole fleet 10 s after the last batch (deploy.bakeSeconds). Amazon's pipelines bake each stage,
 * longest at the first (one box) where a bad change costs least, and watch alarms for a time rather than
 * take one good answer; Argo Rollouts' canary steps are `setWeight` then `pause: {duration}` (10 s to
 * minutes in its examples) with analysis running meanwhile. Scaled to a fleet that starts in a second: a
 * crash within 15 s of start stops at one host, and one later than that is still caught by the bake and the
 * watch, which keep running until the end. --bake 0 turns both off (the canary passes on health.stableMs).
 */

export type Verdict = {ok: true} | {ok: false; definite: boolean; why: string}

/** One answer against what the gate saw. A different pid or release is definite; no answer may be a blip. */
export function verdict(a: HealthAnswer, want: {release: string; pid: number | null}): Verdict {
  if (a.status === 0) return {ok: false, definite: false, why: `no answer (${a.error ?? 'nothing'})`}
  if (a.pid !== undefined && want.pid !== null && a.pid !== want.pid) {
    return {ok: false, definite: true, why: `restarted: now pid ${a.pid}, its gate saw pid ${want.pid}`}
  }
  if (a.release !== undefined && a.release !== want.release) return {ok: false, definite: true, why: `now reports release ${a.release}`}
  if (a.status !== 200) return {ok: false, definite: false, why: `answered ${a.status}`}
  return {ok: true}
}

/** Re-checks hosts that passed their gate; those that fail, with why ("after its gate: …"). Never throws. */
export async function recheck(ctx: DeployContext, hosts: readonly HostState[]): Promise<Map<HostState, string>> {
  const failed = new Map<HostState, string>()
  const path = ctx.settings.health.path
  await Promise.all(
    hosts.map(async (s) => {
      const want = {release: s.result.target!, pid: s.result.pid}
      const ask = () => s.remote!.ask(ctx.port, path).catch((err: unknown): HealthAnswer => ({status: 0, error: err instanceof Error ? err.message : String(err)}))
      const first = await ask()
      const v = verdict(await askAgain(ask, first, (a) => verdict(a, want).ok, {definite: (a) => verdict(a, want).ok || (verdict(a, want) as {definite: boolean}).definite}), want)
      if (!v.ok) {
        s.result.failedAt = new Date().toISOString()
        failed.set(s, `after its gate: ${v.why}`)
      }
    }),
  )
  return failed
}
