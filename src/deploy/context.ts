import {randomBytes} from 'node:crypto'

import type {LoadedConfig} from '../config/load.js'
import {deploySchema, type DeploySettings, type EnvironmentConfig} from '../config/schema.js'
import type {Host} from '../inventory/host.js'
import type {ConnectionPool} from '../ssh/pool.js'
import {auditLine, type AuditEntry} from './audit.js'
import {operatorName} from './lock.js'
import {newHostState, type HostState} from './remote.js'
import type {Phase} from './result.js'
import {maxFailCount, parseBatchSpec, parseMaxFail, type BatchSize, type MaxFail} from './strategy.js'

/**
 * What a deploy or rollback knows from its start: the options given, the settings they resolve to, the
 * hosts' states, the clock and the progress callback. Built once by `newContext` and passed to each phase
 * (preflight, ship, roll, bake, finish), instead of each phase re-reading the options.
 */

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
  /** rollback: the release to go back to (default: per host, what it ran before the last change, from its audit history). */
  to?: string
  batch?: string
  maxFail?: string
  /** Seconds the fleet is watched after the last batch (default deploy.bakeSeconds); 0: no bake, and the canary passes on health.stableMs. */
  bakeSeconds?: number
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
  /** How often hosts that passed their gate are re-checked (ms, default 1000). */
  pollMs?: number
  /** Progress: what a host is doing now, and when it is done. */
  onHost?: (host: string, text: string, done?: {ok: boolean}) => void
}

export function deploySettings(env: EnvironmentConfig): DeploySettings {
  return env.deploy ?? deploySchema.parse({})
}

/** The port the app answers its health paths on. */
export function healthPort(settings: DeploySettings, env: EnvironmentConfig): number {
  return settings.health.port ?? (env.app?.port as number | undefined) ?? 8080
}

export interface DeployContext {
  opts: DeployOptions
  action: 'deploy' | 'rollback'
  loaded: LoadedConfig
  env: EnvironmentConfig
  settings: DeploySettings
  batchSizes: BatchSize[]
  maxFail: MaxFail
  /** The fleet's bake after the last batch, and the canary's stable window. */
  bakeMs: number
  canaryStableMs: number
  pollMs: number
  port: number
  concurrency: number
  signal: AbortSignal | undefined
  operator: string
  /** This run's id: in the lock, and on every audit line it writes. */
  run: string
  /** Every selected host, and the lock host (which may be outside the selection). */
  states: HostState[]
  lockState: HostState
  now(): number
  say(host: string, text: string, done?: {ok: boolean}): void
  /** Times `work` as one phase of a host. */
  timed<T>(s: HostState, phase: Phase, work: () => Promise<T>): Promise<T>
  /** An audit line of this run (its who, action, environment and run id filled in). */
  line(e: Omit<AuditEntry, 'at' | 'who' | 'action' | 'environment' | 'run' | 'hosts'> & {hosts?: Record<string, string>}): string
}

/** Resolves the options (bad ones are a UserError here, before anything is touched). */
export function newContext(opts: DeployOptions): DeployContext {
  const t0 = performance.now()
  const now = () => Math.round(performance.now() - t0)
  const env = opts.loaded.env
  const settings = deploySettings(env)
  const bakeSeconds = opts.bakeSeconds ?? settings.bakeSeconds
  const states = opts.hosts.map(newHostState)
  const lockHost = opts.lockHost ?? opts.hosts[0]!
  const lockState = states.find((s) => s.host.name === lockHost.name) ?? newHostState(lockHost)
  const operator = operatorName(settings.operator)
  const run = `${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}Z-${randomBytes(3).toString('hex')}`
  const say = (host: string, text: string, done?: {ok: boolean}) => opts.onHost?.(host, text, done)
  return {
    opts,
    action: opts.action,
    loaded: opts.loaded,
    env,
    settings,
    batchSizes: parseBatchSpec(opts.batch ?? settings.batch),
    maxFail: parseMaxFail(opts.maxFail ?? settings.maxFail),
    bakeMs: Math.round(bakeSeconds * 1000),
    // No bake asked for: the canary passes as before bakes existed, on health.stableMs.
    canaryStableMs: bakeSeconds > 0 ? settings.health.canaryStableMs : settings.health.stableMs,
    pollMs: opts.pollMs ?? 1000,
    port: healthPort(settings, env),
    concurrency: opts.concurrency ?? env.ssh.concurrency,
    signal: opts.signal,
    operator,
    run,
    states,
    lockState,
    now,
    say,
    async timed(s, phase, work) {
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
    },
    line(e) {
      return auditLine({at: new Date().toISOString(), who: operator, action: opts.action, environment: opts.loaded.environment, run, hosts: {}, ...e})
    },
  }
}

/** How many failed hosts the run tolerates, out of the hosts it works on. */
export function maxFailOf(ctx: DeployContext, hosts: number): number {
  return maxFailCount(ctx.maxFail, hosts)
}
