import type {LockHolder} from './lock.js'
import type {HostOutcome} from './strategy.js'
import type {UnfinishedRun} from './history.js'

/** What `feedops deploy` and `feedops rollback` return (and print with --json). */

export type Phase = 'upload runtime' | 'upload' | 'unpack' | 'upload cache' | 'switch' | 'restart' | 'health' | 'switch back' | 'cleanup'

export interface PhaseTiming {
  phase: Phase
  /** ms since the run started */
  startMs: number
  ms: number
  ok: boolean
}

/** `unchanged`: a rollback whose target for the host is what it runs already. */
export type DeployOutcome = HostOutcome | 'ship-failed' | 'skipped' | 'unchanged'

export interface DeployHostResult {
  host: string
  address: string
  outcome: DeployOutcome
  /** What current pointed at when this run took the lock. */
  previous: string | null
  /** What current points at after the run. */
  current: string | null
  /** The release this run meant the host to run (a rollback's target differs per host). */
  target: string | null
  /** Where a rollback's target came from (the audit history on the host, or --to). */
  targetSource?: string
  /** The pid that passed this host's gate (the re-checks and the bake want the same one). */
  pid: number | null
  runtimeUploaded: boolean
  error: string | null
  /** When a re-check saw this host fail after its gate (ISO time, ms). */
  failedAt?: string
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
  /** Seconds the whole fleet is watched after the last batch; the canary's window (ms). */
  bakeSeconds: number
  canaryStableMs: number
  steps: string[]
}

export interface DeployResult {
  action: 'deploy' | 'rollback'
  environment: string
  /** This run's id (in the lock and on every audit line it writes). */
  run: string
  operator: string
  release: string
  dryRun: boolean
  plan: DeployPlan
  ok: boolean
  /** Why the run stopped early: max-fail (rolled back), ship (not enough hosts got the release), interrupted. */
  stopped: 'max-fail' | 'ship' | 'interrupted' | null
  hosts: DeployHostResult[]
  /** Hosts where the release failed its gate or a re-check, and is now marked bad. */
  markedBad: string[]
  /** It stopped because its config failed on the hosts (a server it names does not answer), not its code: not marked bad. */
  configFailure: boolean
  /** Hosts where a release is now marked abandoned (rolled away from, or left by a run that died), by release. */
  markedAbandoned: Record<string, string[]>
  /** Runs that took the lock and never wrote their end: who, when, which hosts they switched. */
  unfinished: UnfinishedRun[]
  /** Things the operator should know that did not stop the run (a --to naming a marked release). */
  warnings: string[]
  removed: Record<string, string[]>
  brokeLock: LockHolder | null
  buildMs: number
  /** The bundle's app.mjs and pm.mjs came from the previous build (no input had changed). */
  bundleReused: boolean
  /** ms the bake lasted (0 when there was none, or it was cut short). */
  bakedMs: number
  durationMs: number
}
