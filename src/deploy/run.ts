import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {ExitCode, isUserError, UserError} from '../errors.js'
import {newContext, type DeployContext, type DeployOptions} from './context.js'
import {closeRun, finish} from './finish.js'
import {heartbeatStep, releaseStep, updateOwnerStep} from './lock.js'
import {connectAll, Interrupted, peekLock, readFleet, takeLock, writeStarted, type FleetView, type HeldLock} from './preflight.js'
import type {HostState} from './remote.js'
import type {DeployPlan, DeployResult} from './result.js'
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

function emptyResult(ctx: DeployContext): DeployResult {
  return {
    action: ctx.action,
    environment: ctx.loaded.environment,
    run: ctx.run,
    operator: ctx.operator,
    release: '',
    dryRun: Boolean(ctx.opts.dryRun),
    plan: {release: '', runtime: ctx.settings.runtime, lockHost: ctx.lockState.host.name, lock: null, batches: [], runtimeUploads: [], skipped: [], bakeSeconds: ctx.bakeMs / 1000, canaryStableMs: ctx.canaryStableMs, steps: []},
    ok: false,
    stopped: null,
    hosts: ctx.states.map((s) => s.result),
    markedBad: [],
    configFailure: false,
    markedAbandoned: {},
    unfinished: [],
    warnings: [],
    removed: {},
    brokeLock: null,
    buildMs: 0,
    bundleReused: false,
    bakedMs: 0,
    durationMs: 0,
  }
}

function fillPlan(ctx: DeployContext, result: DeployResult, view: FleetView): void {
  const {settings} = ctx
  const release = view.release
  const runtime = view.bundle ? view.bundle.manifest.runtime : settings.runtime
  result.release = release
  result.unfinished = view.unfinished
  result.warnings = view.warnings
  result.buildMs = view.bundle?.buildMs ?? 0
  result.bundleReused = view.bundle?.reused ?? false
  const plan: DeployPlan = result.plan
  plan.release = release
  plan.runtime = runtime
  plan.batches = planBatches(
    view.active.filter((s) => s.result.outcome !== 'unchanged'),
    ctx.batchSizes,
  ).map((b) => b.map((s) => s.host.name))
  plan.runtimeUploads = ctx.action === 'deploy' ? view.active.filter((s) => !s.probe!.hasRuntime).map((s) => s.host.name) : []
  const lockPath = ctx.lockState.layout?.lock ?? `${settings.path}/lock`
  plan.steps = [
    `lock ${lockPath} on ${ctx.lockState.host.name} (before the build); read every host's current, releases, marks and audit history under it; append \`started\` to each audit.log`,
    ...(ctx.action === 'deploy'
      ? [
          `every host at once: upload runtime node ${runtime} where runtimes/${runtime} is missing (sha512-checked), upload ${release}.tar.gz (sha256-checked), unpack into releases/${release}, write its config to shared/config/${release}/ (feedops.json and app.env, ${settings.configGroup ? `0640, group ${settings.configGroup}` : '0600'})`,
        ]
      : [`per host, its target (${[...new Set(view.active.map((s) => `${s.host.name} -> ${s.result.target}${s.result.outcome === 'unchanged' ? ' (runs it already)' : ''}`))].join(', ')})`]),
    `per batch: switch current (a \`switched\` line in audit.log); restart (${settings.restart}); gate: ${settings.health.path} 200 reporting the release within ${settings.health.timeout} s (the canary: from one pid for ${ctx.canaryStableMs} ms, asked every ${ctx.pollMs} ms)`,
    `every host that passed its gate: re-checked every ${ctx.pollMs} ms and after each batch (200, same release, same pid); one that fails counts as failed`,
    ...(ctx.bakeMs > 0 ? [`bake: after the last batch, the whole fleet watched ${ctx.bakeMs / 1000} s the same way; then checked once more`] : ['no bake (--bake 0): the fleet is checked once after the last batch']),
    `on a failure: switch that host back to what it ran when this run took the lock; past max-fail ${JSON.stringify(ctx.opts.maxFail ?? settings.maxFail)}: roll back every switched host; mark the release BAD where it failed, ABANDONED where it was rolled away from`,
    ...(ctx.action === 'deploy' ? [`keep the last ${settings.keep} good releases per host, marked ones pruned first (never the running one or the one before it)`] : []),
    `append \`finished\` (or \`rolled back\`) to audit.log on each host and locally; unlock`,
  ]
}
