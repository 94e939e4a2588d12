import {ExitCode, errorText, UserError} from '../errors.js'
import {parseAudit} from './audit.js'
import {buildBundle, type Bundle} from './bundle.js'
import type {DeployContext} from './context.js'
import {rollbackTarget, unfinishedRuns, type UnfinishedRun} from './history.js'
import {acquireStep, describeHolder, isStale, newLockOwner, parseAcquire, parseReadLock, readLockStep, type LockHolder, type LockOwner} from './lock.js'
import {eachState, Remote, StepFailed, type HostState} from './remote.js'
import {ensureRuntime, feedopsCacheDir, localRuntimeNode, type Runtime} from './runtime.js'
import * as steps from './steps.js'
import {preflightVerify} from './verify.js'
import {homeProblem} from '../config/deploy-path.js'
import type {RemoteStep} from '../ssh/command.js'

/**
 * Preflight, in this order: every host reached with a known key (an unreachable one refused by name, nothing
 * changed), then the fleet's lock taken (or waited for), and only then, under the lock, every host's state
 * read (current, releases, marks, its audit history), the build started, free disk checked, runs that died
 * reported, and a rollback's target per host chosen from history. So one run's view of the fleet is never
 * older than its lock. Once all of it passed, the run's `started` line goes to every host (writeStarted).
 */

/** Ctrl-C or SIGTERM while preflight waited on something: not an error, the run ends with 130. */
export class Interrupted extends Error {}

const interruptedOr = (ctx: DeployContext, err: unknown): unknown => (ctx.signal?.aborted ? new Interrupted('interrupted') : err)

/** Connects to every selected host and the lock host at once; an unreachable one is refused unless skipped. */
export async function connectAll(ctx: DeployContext): Promise<{active: HostState[]; unreachable: HostState[]}> {
  const {states, lockState} = ctx
  const all = states.includes(lockState) ? states : [...states, lockState]
  await eachState(
    all,
    async (s) => {
      try {
        s.remote = new Remote(s.host, await ctx.opts.pool.connect(s.host))
      } catch (err) {
        s.result.outcome = 'skipped'
        s.result.error = `unreachable at preflight: ${errorText(err)}`
      }
    },
    {concurrency: ctx.concurrency},
  )
  if (ctx.signal?.aborted) throw new Interrupted('interrupted')
  const unreachable = all.filter((s) => !s.remote)
  if (unreachable.length > 0 && (!ctx.opts.skipUnreachable || !lockState.remote)) {
    const names = unreachable.map((s) => s.host.name)
    throw new UserError(
      `Preflight: ${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} unreachable (${unreachable[0]!.result.error?.replace(/^unreachable at preflight: /, '')}); nothing was changed.`,
      {
        fix: !lockState.remote
          ? `${lockState.host.name} holds the fleet's deploy lock and must be reachable; bring it back first.`
          : 'Bring the host back, or pass --skip-unreachable to deploy to the others.',
        exitCode: ExitCode.failed,
      },
    )
  }
  return {active: states.filter((s) => s.remote), unreachable: states.filter((s) => !s.remote)}
}

/** The lock host's layout (its root with ~ expanded), from a probe that only reads. */
async function lockLayout(ctx: DeployContext): Promise<steps.HostLayout> {
  const s = ctx.lockState
  if (!s.layout) {
    const probe = steps.parseProbe(await s.remote!.run(steps.probeStep(ctx.settings.path, ctx.settings.runtime, {allowSystemPath: ctx.settings.allowSystemPath}), {timeoutMs: 30_000}))
    refuseOutsideHome(ctx, [{name: s.host.name, probe}])
    s.layout = steps.hostLayout(probe.root)
  }
  return s.layout
}

/** deploy.path outside the deploy user's home on these hosts, without deploy.allowSystemPath: refused, nothing written. */
function refuseOutsideHome(ctx: DeployContext, probed: {name: string; probe: steps.Probe}[]): void {
  const outside = probed.filter((p) => p.probe.outsideHome)
  if (outside.length === 0) return
  throw new UserError(
    `deploy.path (${ctx.settings.path}) in ${ctx.loaded.file} ${homeProblem(outside[0]!.probe.root, outside[0]!.probe.home, false) ?? 'is outside the deploy user\'s home'}${outside.length > 1 ? ` (on ${outside.map((p) => p.name).join(', ')})` : ` (on ${outside[0]!.name})`}; nothing was changed.`,
    {fix: 'Put deploy.path under ~/, or set deploy.allowSystemPath: true to deploy there on purpose.'},
  )
}

/** Who holds the lock now, without taking it (the dry run). */
export async function peekLock(ctx: DeployContext): Promise<LockHolder | null> {
  return parseReadLock(await ctx.lockState.remote!.run(readLockStep(await lockLayout(ctx))))
}

export interface HeldLock {
  owner: LockOwner
  layout: steps.HostLayout
  /** A stale lock this run broke (--force-unlock). */
  broke: LockHolder | null
}

/** Takes the fleet's lock, or waits up to --lock-wait for it; held: exit 3 naming the holder. */
export async function takeLock(ctx: DeployContext): Promise<HeldLock> {
  const layout = await lockLayout(ctx).catch((err: unknown) => {
    throw interruptedOr(ctx, err)
  })
  const owner = newLockOwner(ctx.action, '', ctx.opts.message ?? '', ctx.operator)
  const remote = ctx.lockState.remote!
  const until = Date.now() + (ctx.opts.lockWaitS ?? 0) * 1000
  for (;;) {
    const answer = parseAcquire(
      await remote.run(acquireStep(layout, owner, ctx.settings.lockStaleSeconds, Boolean(ctx.opts.forceUnlock))).catch((err: unknown) => {
        if (err instanceof StepFailed && err.exitCode === 3) return err.message
        throw interruptedOr(ctx, err)
      }),
    )
    if (answer.state === 'acquired') return {owner, layout, broke: answer.broke ?? null}
    if (ctx.signal?.aborted) throw new Interrupted('interrupted')
    if (Date.now() >= until) {
      const stale = isStale(answer.holder, ctx.settings.lockStaleSeconds)
      throw new UserError(`The deploy lock on ${remote.host.name} is ${stale ? 'stale: held by a run that stopped' : 'held by'} ${describeHolder(answer.holder)}.`, {
        fix: stale
          ? 'Make sure that run is gone, then pass --force-unlock to break the lock.'
          : `Wait for it to finish (--lock-wait SECONDS waits for it), or ask ${answer.holder.owner.owner ?? 'its owner'}.`,
        exitCode: ExitCode.nothingDone,
      })
    }
    await new Promise((r) => setTimeout(r, 1000))
  }
}

export interface FleetView {
  active: HostState[]
  bundle: Bundle | undefined
  /** The bundle's runtime in the local cache (deploy). */
  runtime: Promise<Runtime> | undefined
  release: string
  unfinished: UnfinishedRun[]
  warnings: string[]
}

/**
 * Under the lock: every host's state read (and this run's `started` appended), the bundle built meanwhile
 * (deploy), disk checked, and the release or a rollback's targets chosen.
 */
export async function readFleet(ctx: DeployContext, active: HostState[], opts: {dryRunCacheDir?: string} = {}): Promise<FleetView> {
  const {settings} = ctx
  const dry = Boolean(ctx.opts.dryRun)
  // The runtime is fetched (once) and checked while the hosts are probed: the build makes the release's
  // compile cache with it, and hosts that lack it get it uploaded.
  const runtime = ctx.action === 'deploy' && !dry ? ensureRuntime(settings.runtime, ctx.opts.cacheDir ?? feedopsCacheDir()) : undefined
  runtime?.catch(() => {})
  const building: Promise<Bundle | undefined> =
    ctx.action === 'deploy'
      ? buildBundle({
          cacheDir: opts.dryRunCacheDir ?? ctx.opts.cacheDir ?? feedopsCacheDir(),
          runtime: settings.runtime,
          rebuild: Boolean(ctx.opts.rebuild),
          cacheLater: true,
          // No runtime here (its fetch failed: reported when it is needed): the release goes without the cache.
          ...(runtime ? {runtimeNode: () => runtime.then(localRuntimeNode, () => null)} : {}),
        })
      : Promise.resolve(undefined)
  building.catch(() => {})

  const failedProbe: HostState[] = []
  await eachState(
    active,
    async (s) => {
      try {
        s.probe = steps.parseProbe(await s.remote!.run(steps.probeStep(settings.path, settings.runtime, {allowSystemPath: settings.allowSystemPath}), {timeoutMs: 30_000}))
        s.layout = steps.hostLayout(s.probe.root)
        s.audit = parseAudit(s.probe.audit)
        s.result.previous = s.probe.current
        s.result.current = s.probe.current
      } catch (err) {
        s.result.error = `preflight: ${errorText(err)}`
        failedProbe.push(s)
      }
    },
    {concurrency: ctx.concurrency},
  )
  if (ctx.signal?.aborted) throw new Interrupted('interrupted')
  refuseOutsideHome(ctx, active.filter((s) => s.probe).map((s) => ({name: s.host.name, probe: s.probe!})))
  if (failedProbe.length > 0) {
    throw new UserError(`Preflight: ${failedProbe.map((s) => `${s.host.name} (${s.result.error})`).join(', ')}; nothing was changed.`, {
      fix: 'Check the host (its disk, deploy.path), then run again.',
      exitCode: ExitCode.failed,
    })
  }
  const lowDisk = active.filter((s) => s.probe!.freeKb < settings.minFreeMb * 1024)
  if (ctx.action === 'deploy' && lowDisk.length > 0) {
    throw new UserError(
      `Preflight: ${lowDisk.map((s) => `${s.host.name} (${Math.floor(s.probe!.freeKb / 1024)} MiB free)`).join(', ')} ${lowDisk.length > 1 ? 'have' : 'has'} less than deploy.minFreeMb = ${settings.minFreeMb} MiB free under ${settings.path}; nothing was changed.`,
      {fix: 'Free some disk on those hosts (old releases, logs), or lower deploy.minFreeMb.', exitCode: ExitCode.failed},
    )
  }
  const unfinished = unfinishedRuns(new Map(active.map((s) => [s.host.name, s.audit])), ctx.run)
  const warnings: string[] = []

  // rollback: each host's target must be intact there (refused otherwise); deploy: a changed current is said,
  // checked while the bundle builds.
  const verifying = (action: 'deploy' | 'rollback') =>
    preflightVerify(
      action,
      active.flatMap((s) => {
        const id = action === 'rollback' ? (s.result.outcome === 'unchanged' ? null : s.result.target) : s.probe!.current
        return id ? [{host: s.host.name, layout: s.layout!, release: id, run: (step: RemoteStep) => s.remote!.run(step, {timeoutMs: 120_000})}] : []
      }),
      {cacheDir: ctx.opts.cacheDir ?? feedopsCacheDir(), concurrency: ctx.concurrency},
    )
  const deployVerified = ctx.action === 'deploy' ? verifying('deploy') : undefined
  deployVerified?.catch(() => {})
  let bundle: Bundle | undefined
  let release: string
  if (ctx.action === 'deploy') {
    try {
      bundle = await building
    } catch (err) {
      if (ctx.signal?.aborted) throw new Interrupted('interrupted')
      throw new UserError(`The bundle did not build: ${errorText(err).split('\n')[0]}`, {fix: 'Fix the build error in app/ (run `npm run build`).', exitCode: ExitCode.failed, cause: err})
    }
    release = bundle!.manifest.id
    for (const s of active) s.result.target = release
  } else {
    release = chooseTargets(ctx, active, unfinished, warnings)
  }
  if (ctx.signal?.aborted) throw new Interrupted('interrupted')
  if (ctx.action === 'rollback') warnings.push(...(await verifying('rollback')))
  else warnings.push(...(await deployVerified!))
  return {active, bundle, runtime, release, unfinished, warnings}
}

/**
 * The run's `started` line on every host, once preflight passed (a refused run changes nothing, not even the
 * audit) and before anything is shipped or switched: from here on, a run that dies is seen by the next one.
 */
export async function writeStarted(ctx: DeployContext, active: HostState[], release: string): Promise<void> {
  const line = ctx.line({event: 'started', release, ...(ctx.opts.message ? {message: ctx.opts.message} : {})})
  // A host that cannot take the line cannot take the release either: its ship says so, by name.
  await eachState(active, (s) => s.remote!.run(steps.appendAuditStep(s.layout!, line)).then(() => undefined, () => undefined), {concurrency: ctx.concurrency})
}

/**
 * rollback: each host's target, from --to or from its history (history.ts), set on its state; returns the
 * release most hosts go to. Refuses (exit 2) a target a host lacks or a host with none; nothing to do
 * (every host runs its target already) is exit 3.
 */
function chooseTargets(ctx: DeployContext, active: HostState[], unfinished: readonly UnfinishedRun[], warnings: string[]): string {
  const to = ctx.opts.to
  const left = new Set(unfinished.flatMap((u) => u.releases))
  const none: string[] = []
  for (const s of active) {
    const p = s.probe!
    if (to !== undefined) {
      s.result.target = to
      s.result.targetSource = '--to'
      continue
    }
    const t = rollbackTarget(s.host.name, s.audit, {current: p.current, present: p.releases, excluded: new Set([...p.bad, ...p.abandoned, ...left])})
    if (t.release === null) none.push(`${s.host.name}: ${t.why}`)
    else {
      s.result.target = t.release
      s.result.targetSource = t.source
    }
  }
  if (none.length > 0) {
    throw new UserError(`No release to roll back to on ${none.join('; ')}; nothing was changed.`, {fix: 'Name one with --to (see `feedops releases`).'})
  }
  if (to !== undefined) {
    const lacking = active.filter((s) => !s.probe!.releases.includes(to))
    if (lacking.length > 0) {
      throw new UserError(`${lacking.map((s) => s.host.name).join(', ')} ${lacking.length > 1 ? 'lack' : 'lacks'} release ${to}; nothing was changed.`, {
        fix: 'Pick a release every host has (see `feedops releases`), or deploy it again.',
      })
    }
    const bad = active.filter((s) => s.probe!.bad.includes(to)).map((s) => s.host.name)
    const abandoned = active.filter((s) => s.probe!.abandoned.includes(to) || left.has(to)).map((s) => s.host.name)
    if (bad.length > 0) warnings.push(`${to} is marked bad on ${bad.join(', ')} (it failed its gate there); rolling back to it because --to names it`)
    if (abandoned.length > 0) warnings.push(`${to} is marked abandoned on ${abandoned.join(', ')}; rolling back to it because --to names it`)
  }
  for (const s of active) if (s.result.target === s.probe!.current) s.result.outcome = 'unchanged'
  if (active.every((s) => s.result.outcome === 'unchanged')) {
    throw new UserError(`Nothing to do: every host runs ${to ? to : 'its rollback target'} already.`, {
      fix: 'See `feedops releases` and `feedops rollback --dry-run`; name another release with --to.',
      exitCode: ExitCode.nothingDone,
    })
  }
  const counts = new Map<string, number>()
  for (const s of active) if (s.result.outcome !== 'unchanged') counts.set(s.result.target!, (counts.get(s.result.target!) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1])[0]![0]
}
