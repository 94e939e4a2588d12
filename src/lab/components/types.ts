import type {LabLayout} from '../layout.js'
import type {PackageNeed} from '../packages.js'
import type {ProcessIdentity, StopOutcome} from '../process.js'
import type {ProcessRecord} from '../state.js'

/** Everything a component needs to know about the lab being brought up. */
export interface LabContext {
  /** Absolute lab dir. */
  dir: string
  layout: LabLayout
  redis: boolean
  memcached: boolean
  cloud: boolean
  /** PgBouncer in front of each Postgres server. */
  pgbouncer: boolean
  /** Running as root: servers that refuse root (Postgres) run as their own user. */
  isRoot: boolean
  progress: (msg: string) => void
}

/** One process the lab wants running. */
export interface DesiredProcess {
  component: string
  name: string
  address: string
  port: number
  argv: string[]
  /** Strings its command line keeps for its whole life (used to recognise it later). */
  match: string[]
  logFile: string
  env?: NodeJS.ProcessEnv
  cwd?: string
  uid?: number
  gid?: number
}

/**
 * A part of the lab (sshd hosts, Postgres servers, Redis…). Adding a part = one module exporting
 * one of these and one line in components/index.ts. `lab up` asks every component for its
 * packages and desired processes, calls `prepare` (files, keys, data dirs), spawns what is not
 * already running and matching (recording its pid at once), waits for its port, then calls
 * `ready`, then, once all are ready, each one's `settle`; `lab down` calls `stop` (default: TERM, then KILL) for each record.
 */
export interface LabComponent {
  id: string
  /** Human name for progress lines. */
  title: string
  /** Packages whose binaries this component runs, given the lab's size (none when it runs nothing). */
  packages(ctx: LabContext): PackageNeed[]
  desired(ctx: LabContext): DesiredProcess[]
  /** Throws a UserError for anything that would stop it from starting; runs before anything is touched. */
  check?(ctx: LabContext): void
  /** Writes files every start needs; `toStart` are the processes about to be started. */
  prepare?(ctx: LabContext, toStart: DesiredProcess[]): Promise<void>
  /** Runs after all processes of the component serve (e.g. create databases). */
  ready?(ctx: LabContext, all: DesiredProcess[]): Promise<void>
  /** Runs once every component is ready, for work that needs other parts too (the ELB's load balancers need the cloud endpoint). */
  settle?(ctx: LabContext): Promise<void>
  /** Stops one recorded process; default: TERM, then KILL after a timeout. */
  stop?(dir: string, record: ProcessRecord & ProcessIdentity): Promise<StopOutcome>
}
