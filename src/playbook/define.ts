import type {EnvironmentConfig} from '../config/schema.js'
import type {Host} from '../inventory/host.js'
import type {CommandOptions, RemoteCommand} from '../ssh/command.js'

/**
 * Playbooks are Fabric's fabfile, typed: a name, the roles it runs on by default, and steps. Each step
 * gets a handle on one host (run, sudo, put, get, the Host and the config) and may return a value; values
 * are collected per host per step. A step that throws fails that host and skips its remaining steps.
 */

export interface HostRunOptions extends CommandOptions {
  /** Return the result of a non-zero exit instead of throwing (Fabric's `warn=True`). */
  allowFailure?: boolean
  /** Seconds before the command is killed; default: the run's command timeout. */
  timeout?: number
  stdin?: string
}

export interface CommandOutput {
  /** The line that ran on the host. */
  command: string
  stdout: string
  stderr: string
  exitCode: number | null
  signal: string | null
  ok: boolean
  durationMs: number
}

export interface HostHandle {
  readonly host: Host
  /** The selected environment's config. */
  readonly config: EnvironmentConfig
  /** A shell line (sent as written) or an argv array (every word quoted). Throws RemoteCommandError on failure. */
  run(cmd: RemoteCommand, opts?: HostRunOptions): Promise<CommandOutput>
  /** Like run, through `sudo -n` (skipped when already connected as root and no other user is asked for). */
  sudo(cmd: RemoteCommand, opts?: HostRunOptions & {user?: string}): Promise<CommandOutput>
  /** Copies a local file to the host (SFTP). */
  put(local: string, remote: string): Promise<void>
  /** Copies a file from the host (SFTP). */
  get(remote: string, local: string): Promise<void>
  /** Shows a line of progress for this host (TTY only). */
  progress(text: string): void
}

export interface PlaybookStep<T = unknown> {
  title: string
  run: (host: HostHandle) => Promise<T> | T
}

export interface Playbook {
  name: string
  description: string
  /** Hosts with any of these roles when neither --role nor --hosts is given; empty or absent: every host. */
  roles?: readonly string[]
  steps: readonly PlaybookStep[]
  /**
   * One row per host for the final table, from the step values (keyed by step title). Without it, the
   * command shows each host's step outcomes.
   */
  report?: (values: Readonly<Record<string, unknown>>, host: Host) => Record<string, string>
}

export function definePlaybook<const P extends Playbook>(playbook: P): P {
  if (!/^[a-z][a-z0-9-]*$/.test(playbook.name)) throw new Error(`playbook name "${playbook.name}" must be lower-case letters, digits and dashes`)
  if (playbook.steps.length === 0) throw new Error(`playbook ${playbook.name} has no steps`)
  const titles = playbook.steps.map((s) => s.title)
  const dup = titles.find((t, i) => titles.indexOf(t) !== i)
  if (dup) throw new Error(`playbook ${playbook.name} has two steps titled "${dup}"`)
  return playbook
}

export class RemoteCommandError extends Error {
  override readonly name = 'RemoteCommandError'
  constructor(readonly output: CommandOutput) {
    const why =
      output.exitCode !== null ? `exited with ${output.exitCode}` : output.signal ? `was killed by signal ${output.signal}` : 'did not finish'
    const detail = (output.stderr.trim() || output.stdout.trim()).split('\n').slice(-1)[0] ?? ''
    super(`\`${truncate(output.command, 80)}\` ${why}${detail ? `: ${truncate(detail, 200)}` : ''}`)
  }
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s
}

export class CommandTimeoutError extends Error {
  override readonly name = 'CommandTimeoutError'
}
