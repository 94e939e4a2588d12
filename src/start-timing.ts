/**
 * Where the CLI's start-up went: `--profile-start` or FEEDOPS_TIMING=1 prints, when the process exits, the
 * time since the process started at which each phase was reached (the bundle run, the command started,
 * config read, inventory listed, first SSH connection open, first byte from a host) and which large
 * parts were loaded. Marks are cheap and always taken; only the report is optional.
 *
 * The state lives on globalThis: the loader (a file of its own) and the bundle both mark phases.
 */

export type StartPhase = 'bundle' | 'command' | 'config' | 'inventory page' | 'connect start' | 'inventory' | 'first connect' | 'first byte'

interface Mark {
  phase: StartPhase
  ms: number
  detail?: string
}

interface TimingState {
  marks: Mark[]
  reporting: boolean
}

const KEY = Symbol.for('feedops.timing')
const LOADED = Symbol.for('feedops.loaded')

function state(): TimingState {
  const g = globalThis as {[KEY]?: TimingState}
  return (g[KEY] ??= {marks: [], reporting: false})
}

/** Records the first time a phase is reached (later calls for the same phase are ignored). */
export function markPhase(phase: StartPhase, detail?: string): void {
  const s = state()
  if (s.marks.some((m) => m.phase === phase)) return
  s.marks.push({phase, ms: performance.now(), ...(detail !== undefined ? {detail} : {})})
}

/** Adds a detail to a phase already marked (the inventory's page count, say). */
export function notePhase(phase: StartPhase, detail: string): void {
  const m = state().marks.find((x) => x.phase === phase)
  if (m) m.detail = detail
}

/**
 * Large parts of the bundle whose first module records that it ran (src/build/bundle-cli.ts adds the
 * line); paths are relative to the project root.
 */
export const LOADED_MARKS: readonly {name: string; test: RegExp}[] = [
  {name: 'config', test: /^src\/config\/load\.ts$/},
  {name: 'config schema', test: /^src\/config\/schema\.ts$/},
  {name: 'zod', test: /(^|\/)node_modules\/zod\//},
  {name: 'yaml', test: /(^|\/)node_modules\/yaml\//},
  {name: 'aws-sdk', test: /(^|\/)node_modules\/@aws-sdk\/|^dist\/vendor\/ec2-sdk\.cjs$/},
  {name: 'ssh2', test: /(^|\/)node_modules\/ssh2\//},
  {name: 'pg', test: /(^|\/)node_modules\/pg\//},
  {name: 'listr2', test: /(^|\/)node_modules\/listr2\//},
]

/** The names of LOADED_MARKS whose modules ran in this process (bundled runs only). */
export function loadedParts(): string[] {
  const set = (globalThis as {[LOADED]?: Set<string>})[LOADED]
  return set ? [...set] : []
}

export function startTimingWanted(argv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  if (env.FEEDOPS_TIMING === '1') return true
  const end = argv.indexOf('--')
  return (end === -1 ? argv : argv.slice(0, end)).includes('--profile-start')
}

/** Prints the report on stderr when the process exits (once). */
export function reportStartTimingAtExit(how: string): void {
  const s = state()
  if (s.reporting) return
  s.reporting = true
  process.once('exit', () => process.stderr.write(formatStartTiming(s.marks, how, loadedParts())))
}

export function formatStartTiming(marks: readonly Mark[], how: string, loaded: readonly string[]): string {
  const width = Math.max(...marks.map((m) => m.phase.length), 'node'.length)
  const rows = marks.map((m) => `  ${m.phase.padEnd(width)}  ${m.ms.toFixed(0).padStart(5)}${m.detail ? `  ${m.detail}` : ''}`)
  return (
    `start-up (${how}; ms since the process started):\n` +
    rows.join('\n') +
    (rows.length ? '\n' : '') +
    `  loaded: ${loaded.length ? loaded.join(', ') : '(none of the large parts)'}\n`
  )
}
