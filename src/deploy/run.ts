import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {ExitCode, isUserError, UserError} from '../errors.js'
import {newContext, type DeployContext, type DeployOptions} from './context.js'
import {closeRun, finish} from './finish.js'
import {heartbeatStep, releaseStep, updateOwnerStep} from './lock.js'
import {connectAll, Interrupted, peekLock, readFleet, takeLock, writeStarted, type FleetView, type HeldLock} from './preflight.js'
import type {HostState} from './remote.js'
import {emptyResult, fillPlan} from './plan.js'
import type {DeployResult} from './result.js'
import type {AppFiles} from './ship.js'
import {roll} from './roll.js'
import {appSecret, checkAppConfig} from './app-config.js'
import {ship} from './ship.js'
import {planBatches} from './strategy.js'

/**
 * `feedops deploy` and `feedops rollback`, as the list of their phases (each a module of src/deploy):
 * connect → lock → preflight under the lock (preflight.ts) → ship (ship.ts) → roll: batches, gates,
 * re-checks (roll.ts, strategy.ts) → bake (bake.ts, inside the roll) → finish: marks, audit, keep (finish.ts).
 */

export type * from './result.js'
export type {DeployOptions} from './context.js'
export {deploySettings, healthPort} from './context.js'

export async function runDeploy(opts: DeployOptions): Promise<DeployResult> {
  if (opts.to !== undefined && opts.to.trim() === '') {
    throw new UserError('--to is empty.', {fix: 'Name a release (see `feedops releases`), or leave --to out to go back in history.'})
  }
  const ctx = newContext(opts)
  // The app's config each host gets, checked with the app's own start-up code before anything is touched.
  const app = ctx.action === 'deploy' ? {secret: appSecret(ctx.loaded) ?? '', configs: checkAppConfig(ctx.loaded, opts.hosts)} : undefined
  const dryDir = opts.dryRun ? mkdtempSync(path.join(tmpdir(), 'feedops-dry-')) : undefined
  const result = emptyResult(ctx)
  let lock: HeldLock | undefined
  let beat: NodeJS.Timeout | undefined
  let active: HostState[] = []
  /** The run wrote `started` on the hosts: from then on it owes them its end. */
  let started = false
  let finished = false
  try {
    const connected = await connectAll(ctx)
    active = connected.active
    const unreachable = connected.unreachable
    result.plan.skipped = unreachable.map((s) => s.host.name)
    if (opts.dryRun) result.plan.lock = await peekLock(ctx)
    else {
      lock = await takeLock(ctx)
      result.brokeLock = lock.broke
      result.plan.lock = lock.broke
      const held = lock
      beat = setInterval(
        () => void ctx.lockState.remote!.run(heartbeatStep(held.layout, held.owner)).catch(() => {}),
        Math.max(1000, Math.min(5000, (ctx.settings.lockStaleSeconds * 1000) / 4)),
      )
    }
    const view = await readFleet(ctx, active, dryDir ? {dryRunCacheDir: dryDir} : {})
    fillPlan(ctx, result, view)
    if (opts.dryRun) {
      result.ok = true
      return result
    }
    if (lock) {
      lock.owner.release = view.release
      void ctx.lockState.remote!.run(updateOwnerStep(lock.layout, lock.owner)).catch(() => {})
    }
    started = true
    await writeStarted(ctx, view.active, view.release)
    await rollFleet(ctx, result, view, app)
    finished = true
    await finish(ctx, result, view.active)
    return result
  } catch (err) {
    const interrupted = err instanceof Interrupted
    // A run that wrote `started` and stops before changing anything (Ctrl-C, a refusal) still writes its end,
    // so the next run does not report it as one that died.
    if (started && !finished) await closeRun(ctx, result, active.filter((s) => s.probe), interrupted ? 'interrupted' : isUserError(err) && err.exitCode === ExitCode.nothingDone ? 'nothing to do' : 'failed')
    if (!interrupted) throw err
    // Ctrl-C before anything changed: no error, nothing to undo.
    result.stopped = 'interrupted'
    return result
  } finally {
    if (beat) clearInterval(beat)
    if (lock) await ctx.lockState.remote!.run(releaseStep(lock.layout, lock.owner)).catch(() => {})
    if (dryDir) rmSync(dryDir, {recursive: true, force: true})
    result.durationMs = ctx.now()
  }
}

/** Ship (deploy), then the rolling switch with its re-checks and bake; fills the hosts' outcomes. */
async function rollFleet(ctx: DeployContext, result: DeployResult, view: FleetView, app: AppFiles | undefined): Promise<void> {
  let hosts = view.active.filter((s) => s.result.outcome !== 'unchanged')
  if (view.bundle && view.runtime && app) {
    const shipped = await ship(ctx, view.active, view.bundle, view.runtime, app)
    result.stopped = shipped.stop
    hosts = shipped.shipped
  }
  if (!result.stopped) {
    const failedBefore = view.active.filter((s) => s.result.outcome === 'ship-failed').length
    result.plan.batches = planBatches(hosts, ctx.batchSizes).map((b) => b.map((s) => s.host.name))
    const rolled = await roll(ctx, hosts, failedBefore, view.active.length)
    for (const [s, o] of rolled.outcomes) {
      s.result.outcome = o.outcome
      if (o.error) s.result.error = o.error
    }
    result.stopped = rolled.stopped
    result.bakedMs = rolled.bakedMs
  }
  // Hosts skipped at preflight were asked for (--skip-unreachable); every other host must run its target.
  result.ok = result.stopped === null && view.active.every((s: HostState) => s.result.outcome === 'updated' || s.result.outcome === 'unchanged')
}
