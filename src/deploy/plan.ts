import type {DeployContext} from './context.js'
import type {FleetView} from './preflight.js'
import type {DeployPlan, DeployResult} from './result.js'
import {planBatches} from './strategy.js'

/** A run's result before it starts, and its plan once preflight read the fleet (what --dry-run prints). */

export function emptyResult(ctx: DeployContext): DeployResult {
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

export function fillPlan(ctx: DeployContext, result: DeployResult, view: FleetView): void {
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
