import {errorText} from '../errors.js'
import type {RemoteStep} from '../ssh/command.js'
import {recheck} from './bake.js'
import {maxFailOf, type DeployContext} from './context.js'
import {CONFIG_FAILURE, failureKind} from './failure.js'
import {gate, gateFailure} from './gate.js'
import {StepFailed, type HostState} from './remote.js'
import {twoPhases} from './ship.js'
import * as steps from './steps.js'
import {planBatches, rollOut, type RollingResult} from './strategy.js'

/**
 * Roll: the batches of src/deploy/strategy.ts over the hosts, canary first. Per host one command moves
 * current (and appends its `switched` audit line) and restarts; the gate wants the host's target release
 * with 200, the canary for its whole stable window from one pid. Every host that passed is re-checked
 * (bake.ts) in the background, after each batch, through the bake and at the end. A host that fails is
 * switched back to what it ran when this run took the lock; past max-fail, every switched host is.
 */

function healthUrl(ctx: DeployContext, s: HostState): string {
  const a = s.host.address
  return `http://${a.includes(':') ? `[${a}]` : a}:${ctx.port}${ctx.settings.health.path}`
}

async function gateHost(ctx: DeployContext, s: HostState, id: string, stableMs: number): Promise<void> {
  const {health} = ctx.settings
  await ctx.timed(s, 'health', async () => {
    const o = await gate(() => s.remote!.ask(ctx.port, health.path), {want: id, timeoutMs: health.timeout * 1000, stableMs, stablePollMs: ctx.pollMs})
    if (!o.ok) {
      // It answered, then failed within its stable window: when that was seen (the bench's detection time).
      if (o.pid !== undefined) s.result.failedAt = new Date().toISOString()
      throw new StepFailed(gateFailure(healthUrl(ctx, s), id, o))
    }
    s.result.pid = o.pid ?? null
  })
}

/** The restart command, after `before` when given (in the same command). */
function restart(ctx: DeployContext, s: HostState, id: string, before?: RemoteStep, onStdout?: (chunk: Buffer) => void): Promise<string> {
  const {settings} = ctx
  const step = steps.restartStep(s.layout!, id, settings.restart, {stop: settings.stopTimeout, start: settings.health.timeout})
  return s.remote!.run(before ? steps.inOrder(before, step) : step, {
    timeoutMs: (settings.stopTimeout + settings.health.timeout + 30) * 1000,
    ...(onStdout ? {onStdout} : {}),
  })
}

const switchedLine = (ctx: DeployContext, s: HostState, from: string | null, to: string | null, back: boolean) =>
  ctx.line({event: 'switched', release: to ?? '', host: s.host.name, from, to, ...(back ? {back} : {})})

export async function roll(ctx: DeployContext, hosts: HostState[], failedBefore: number, total: number): Promise<RollingResult<HostState>> {
  const batches = planBatches(hosts, ctx.batchSizes)
  const canary = new Set(batches[0] ?? [])
  return rollOut(
    batches,
    {maxFail: Math.max(0, maxFailOf(ctx, total) - failedBefore), signal: ctx.signal, pollMs: ctx.pollMs, bakeMs: ctx.bakeMs},
    {
      onBatch: (i, batch) => {
        for (const s of batch) ctx.say(s.host.name, `batch ${i + 1}/${batches.length}`)
      },
      onBake: (ms) => {
        for (const s of hosts) if (s.result.current === s.result.target) ctx.say(s.host.name, `bake ${Math.round(ms / 1000)} s`)
      },
      onLost: (s, why) => {
        s.codeFailed = true
        ctx.say(s.host.name, why)
      },
      recheck: (batch) => recheck(ctx, batch),
      switchHost: async (s, shouldStop) => {
        const id = s.result.target!
        let moved = false
        try {
          // One command switches and restarts: a round trip less per host.
          await twoPhases(
            (phase, work) => ctx.timed(s, phase, work),
            ['switch', 'restart'],
            steps.SWITCHED,
            (onStdout) => restart(ctx, s, id, steps.inOrder(steps.switchStep(s.layout!, id, switchedLine(ctx, s, s.result.previous, id, false)), steps.say(steps.SWITCHED)), onStdout),
            () => {
              moved = true
              s.result.current = id
            },
          )
          if (shouldStop()) return {ok: false, interrupted: true}
          await gateHost(ctx, s, id, canary.has(s) ? ctx.canaryStableMs : 0)
          ctx.say(s.host.name, `runs ${id}`)
          return {ok: true}
        } catch (err) {
          // The link moved and the app did not come up (or did not stay up): the release failed here, for its
          // code, or for its config when the new process runs but what its config names does not answer.
          const e = errorText(err)
          const config = moved && failureKind(e) === 'config'
          if (config) s.configFailed = true
          else if (moved) s.codeFailed = true
          return {ok: false, error: config && !e.startsWith(CONFIG_FAILURE) ? `${CONFIG_FAILURE}: ${e}` : e}
        }
      },
      switchBack: async (s) => {
        const prev = s.result.previous
        const id = s.result.target!
        // A host whose link never moved has nothing to undo.
        if (s.result.current === prev) {
          ctx.say(s.host.name, `still on ${prev ?? 'nothing'}`, {ok: false})
          return {ok: true}
        }
        ctx.say(s.host.name, `switching back to ${prev ?? 'nothing'}`)
        try {
          await ctx.timed(s, 'switch back', async () => {
            if (prev) {
              await s.remote!.run(steps.switchStep(s.layout!, prev, switchedLine(ctx, s, id, prev, true)))
              s.result.current = prev
            } else {
              await s.remote!.run(steps.stopStep(s.layout!, id, ctx.settings.stopTimeout), {timeoutMs: (ctx.settings.stopTimeout + 30) * 1000})
              await s.remote!.run(steps.unlinkCurrentStep(s.layout!, switchedLine(ctx, s, id, null, true)))
              s.result.current = null
            }
          })
          if (prev) {
            await ctx.timed(s, 'restart', () => restart(ctx, s, prev))
            await gateHost(ctx, s, prev, 0)
          }
          ctx.say(s.host.name, `back on ${prev ?? 'nothing'}`, {ok: false})
          return {ok: true}
        } catch (err) {
          ctx.say(s.host.name, 'switch back failed', {ok: false})
          return {ok: false, error: errorText(err)}
        }
      },
    },
  )
}
