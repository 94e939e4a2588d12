import type {SFTPWrapper} from 'ssh2'

import type {EnvironmentConfig} from '../config/schema.js'
import {errorText, UserError} from '../errors.js'
import {selectHosts, type Host} from '../inventory/host.js'
import {commandLine, type RemoteCommand} from '../ssh/command.js'
import {execOn} from '../ssh/exec.js'
import type {Connection, ConnectionPool, PoolStats} from '../ssh/pool.js'
import {summarize, type HostStatus, type RunSummary} from '../ssh/results.js'
import {connectStatus, eachHost, seconds} from '../ssh/runner.js'
import {CommandTimeoutError, RemoteCommandError, type CommandOutput, type HostHandle, type HostRunOptions, type Playbook} from './define.js'

export type StepStatus = 'ok' | 'failed' | 'skipped' | 'interrupted'

export interface StepResult {
  title: string
  ok: boolean
  status: StepStatus
  durationMs: number
  /** What the step returned (JSON-friendly values only are useful in --json). */
  value?: unknown
  error: string | null
}

export interface PlaybookHostResult {
  host: string
  address: string
  ok: boolean
  status: HostStatus
  durationMs: number
  /** The first error: connection failure or the failed step's message. */
  error: string | null
  steps: StepResult[]
  /** The playbook's report row, when it has one and every step succeeded. */
  report?: Record<string, string>
  via?: string
}

export interface PlaybookRunResult {
  playbook: string
  results: PlaybookHostResult[]
  summary: RunSummary
  connections: PoolStats
  durationMs: number
}

export type PlaybookEvent =
  | {type: 'connecting'; host: Host}
  | {type: 'step'; host: Host; index: number; title: string}
  | {type: 'progress'; host: Host; text: string}
  | {type: 'done'; host: Host; result: PlaybookHostResult}

export interface RunPlaybookOptions {
  pool: ConnectionPool
  config: EnvironmentConfig
  concurrency: number
  /** Default per-command timeout in ms (0: none). */
  timeoutMs?: number
  signal?: AbortSignal
  onEvent?: (event: PlaybookEvent) => void
}

/** Unknown name → UserError (exit 2) naming the playbooks there are. */
export function findPlaybook(playbooks: readonly Playbook[], name: string): Playbook {
  const found = playbooks.find((p) => p.name === name)
  if (!found) {
    const names = playbooks.map((p) => p.name).sort()
    throw new UserError(`No playbook named "${name}".`, {fix: `Use one of: ${names.join(', ')} (see \`feedops play --list\`).`})
  }
  return found
}

/** --role/--hosts when given, else the playbook's own roles, else every host. */
export function playbookHosts(playbook: Playbook, all: Host[], sel: {role?: string; hosts?: string[]}): Host[] {
  if (sel.role || (sel.hosts && sel.hosts.length > 0)) return selectHosts(all, sel)
  const roles = playbook.roles ?? []
  if (roles.length === 0) return all
  const picked = all.filter((h) => h.roles.some((r) => roles.includes(r)))
  if (picked.length === 0) {
    throw new UserError(`No host has the roles playbook ${playbook.name} runs on (${roles.join(', ')}).`, {
      fix: 'Pass --role or --hosts, or add those roles in the inventory.',
    })
  }
  return picked
}

class Handle implements HostHandle {
  private sftp: Promise<SFTPWrapper> | undefined

  constructor(
    readonly host: Host,
    readonly config: EnvironmentConfig,
    private readonly conn: Connection,
    private readonly opts: RunPlaybookOptions,
  ) {}

  async run(cmd: RemoteCommand, opts: HostRunOptions = {}): Promise<CommandOutput> {
    const line = commandLine(cmd, opts)
    const timeoutMs = opts.timeout !== undefined ? opts.timeout * 1000 : (this.opts.timeoutMs ?? 0)
    const r = await execOn(this.conn, line, {
      timeoutMs,
      ...(this.opts.signal ? {signal: this.opts.signal} : {}),
      ...(opts.stdin !== undefined ? {stdin: opts.stdin} : {}),
    })
    if (r.interrupted) throw new Interrupted()
    if (r.timedOut) throw new CommandTimeoutError(`\`${line}\` timed out after ${seconds(timeoutMs)}`)
    const out: CommandOutput = {
      command: line,
      stdout: r.stdout,
      stderr: r.stderr,
      exitCode: r.exitCode,
      signal: r.signal,
      ok: r.exitCode === 0,
      durationMs: r.durationMs,
    }
    if (!out.ok && !opts.allowFailure) throw new RemoteCommandError(out)
    return out
  }

  sudo(cmd: RemoteCommand, opts: HostRunOptions & {user?: string} = {}): Promise<CommandOutput> {
    const {user, ...rest} = opts
    if (this.conn.target.user === 'root' && (!user || user === 'root')) return this.run(cmd, rest)
    return this.run(cmd, {...rest, sudo: user ? {user} : true})
  }

  async put(local: string, remote: string): Promise<void> {
    await this.conn.ssh.putFile(local, remote, await this.session())
  }

  async get(remote: string, local: string): Promise<void> {
    await this.conn.ssh.getFile(local, remote, await this.session())
  }

  progress(text: string): void {
    this.opts.onEvent?.({type: 'progress', host: this.host, text})
  }

  /** One SFTP session per host, opened on first use. */
  private session(): Promise<SFTPWrapper> {
    this.sftp ??= this.conn.ssh.requestSFTP()
    return this.sftp
  }

  close(): void {
    this.sftp?.then((s) => s.end(), () => {})
  }
}

class Interrupted extends Error {
  constructor() {
    super('interrupted')
  }
}

/** Runs every step on every host (hosts in parallel, steps in order), one connection per host for all steps. */
export async function runPlaybook(playbook: Playbook, hosts: readonly Host[], opts: RunPlaybookOptions): Promise<PlaybookRunResult> {
  const started = performance.now()
  const skipped = (from: number, status: StepStatus = 'skipped'): StepResult[] =>
    playbook.steps.slice(from).map((s) => ({title: s.title, ok: false, status, durationMs: 0, error: null}))

  const one = async (host: Host): Promise<PlaybookHostResult> => {
    const t0 = performance.now()
    const elapsed = () => Math.round(performance.now() - t0)
    const base = {host: host.name, address: host.address}
    opts.onEvent?.({type: 'connecting', host})
    let conn: Connection
    try {
      conn = await opts.pool.connect(host)
    } catch (err) {
      const status = opts.signal?.aborted ? 'interrupted' : connectStatus(err)
      const result: PlaybookHostResult = {...base, ok: false, status, durationMs: elapsed(), error: status === 'interrupted' ? 'interrupted' : errorText(err), steps: skipped(0)}
      opts.onEvent?.({type: 'done', host, result})
      return result
    }
    const handle = new Handle(host, opts.config, conn, opts)
    const steps: StepResult[] = []
    const values: Record<string, unknown> = {}
    let status: HostStatus = 'ok'
    let error: string | null = null
    for (const [index, step] of playbook.steps.entries()) {
      if (opts.signal?.aborted) {
        status = 'interrupted'
        error = 'interrupted'
        steps.push(...skipped(index))
        break
      }
      opts.onEvent?.({type: 'step', host, index, title: step.title})
      const s0 = performance.now()
      try {
        const value = await step.run(handle)
        values[step.title] = value
        steps.push({title: step.title, ok: true, status: 'ok', durationMs: Math.round(performance.now() - s0), ...(value === undefined ? {} : {value}), error: null})
      } catch (err) {
        const interrupted = err instanceof Interrupted || opts.signal?.aborted === true
        status = interrupted ? 'interrupted' : err instanceof CommandTimeoutError ? 'timeout' : 'failed'
        error = interrupted ? 'interrupted' : `${step.title}: ${errorText(err)}`
        steps.push({title: step.title, ok: false, status: interrupted ? 'interrupted' : 'failed', durationMs: Math.round(performance.now() - s0), error: errorText(err)})
        steps.push(...skipped(index + 1))
        break
      }
    }
    handle.close()
    const result: PlaybookHostResult = {...base, ok: status === 'ok', status, durationMs: elapsed(), error, steps, ...(conn.via ? {via: conn.via} : {})}
    if (result.ok && playbook.report) {
      try {
        result.report = playbook.report(values, host)
      } catch (err) {
        result.ok = false
        result.status = 'failed'
        result.error = `report: ${errorText(err)}`
      }
    }
    opts.onEvent?.({type: 'done', host, result})
    return result
  }

  const results = await eachHost(
    hosts,
    one,
    (host) => {
      const result: PlaybookHostResult = {host: host.name, address: host.address, ok: false, status: 'interrupted', durationMs: 0, error: 'interrupted', steps: skipped(0)}
      opts.onEvent?.({type: 'done', host, result})
      return result
    },
    opts,
  )
  return {
    playbook: playbook.name,
    results,
    summary: summarize(results),
    connections: {...opts.pool.stats},
    durationMs: Math.round(performance.now() - started),
  }
}
