import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import {printable} from '../src/cli/escape.js'
import {hostFlags} from '../src/cli/host-flags.js'
import {withHostSession} from '../src/cli/host-session.js'
import {ExitCode, UserError} from '../src/errors.js'
import type {Host} from '../src/inventory/host.js'
import type {HostResult, PoolStats, RunSummary} from '../src/ssh/index.js'

export interface RunResult {
  command: string
  results: HostResult[]
  summary: RunSummary
  connections: PoolStats
  durationMs: number
  /** SIGINT/SIGTERM when the run was interrupted. */
  interrupted: string | null
}

export default class Run extends FeedopsCommand<RunResult> {
  static override description = `Run a shell command on many hosts at once and show each host's output.

Every selected host runs the command at the same time (up to --concurrency). Output lines are prefixed
by the host name (stdout to stdout, stderr to stderr), or grouped per host with --group; a summary
(host, exit code, duration) ends on stderr. Exit code 1 when any host failed, could not be reached or
was refused. Host keys are checked against known_hosts; unknown hosts are refused unless --accept-new.`

  static override examples = [
    '<%= config.bin %> run -- uname -a',
    "<%= config.bin %> run --role app --timeout 30 -- 'systemctl is-active feed || journalctl -u feed -n 20'",
    '<%= config.bin %> run --hosts app1,app2 --group -- df -h /',
    '<%= config.bin %> run --json -- cat /etc/os-release',
  ]

  static override strict = false

  static override usage = 'run [--role ROLE | --hosts A,B] [--concurrency N] [--timeout S] -- COMMAND...'

  static override flags = {
    ...hostFlags,
    group: Flags.boolean({description: "Print each host's output in one block when it finishes, instead of line by line."}),
  }

  async run(): Promise<RunResult> {
    const {flags, argv} = await this.parse(Run)
    const command = (argv as string[]).join(' ').trim()
    if (command === '') {
      throw new UserError('No command to run.', {fix: 'Put the command after `--`, e.g. `feedops run -- uptime`.'})
    }
    const loaded = this.loadConfig(flags)
    const {runCommand, PrefixedLines, formatRunSummary, summarize, formatDuration} = await import('../src/ssh/index.js')
    const started = performance.now()
    const json = this.jsonEnabled()
    const streaming = !json && !flags.group
    const lines = new Map<string, {out: InstanceType<typeof PrefixedLines>; err: InstanceType<typeof PrefixedLines>}>()
    const linesFor = (host: Host) => {
      let l = lines.get(host.name)
      if (!l) {
        const prefix = `${host.name} | `
        l = {out: new PrefixedLines(prefix, (t) => process.stdout.write(t)), err: new PrefixedLines(prefix, (t) => process.stderr.write(t))}
        lines.set(host.name, l)
      }
      return l
    }

    const {value: ran, interrupted} = await withHostSession(loaded.env, flags, {quiet: json}, async ({hosts, pool, signal, concurrency, timeoutMs}) => {
      const results = await runCommand(hosts, command, {
        pool,
        concurrency,
        timeoutMs,
        signal,
        ...(streaming ? {onOutput: (host, stream, chunk) => (stream === 'stdout' ? linesFor(host).out : linesFor(host).err).push(chunk)} : {}),
        onResult: (r) => {
          if (streaming) {
            const l = lines.get(r.host)
            l?.out.flush()
            l?.err.flush()
          } else if (flags.group && !json) {
            printGroup(r, formatDuration)
          }
        },
      })
      return {results, connections: {...pool.stats}}
    })

    const durationMs = Math.round(performance.now() - started)
    const result: RunResult = {
      command,
      results: ran.results,
      summary: summarize(ran.results),
      connections: ran.connections,
      durationMs,
      interrupted,
    }
    if (!json) process.stderr.write(`\n${formatRunSummary(ran.results, durationMs)}`)
    if (interrupted) this.setExitCode(ExitCode.interrupted)
    else if (result.summary.failed > 0) this.setExitCode(ExitCode.failed)
    return result
  }
}

function printGroup(r: HostResult, formatDuration: (ms: number) => string): void {
  const what = r.exitCode !== null ? `exit ${r.exitCode}` : r.error ?? r.status
  process.stdout.write(`── ${r.host} (${printable(what)}, ${formatDuration(r.durationMs)}) ──\n`)
  const block = (text: string, cut: number | undefined) =>
    `${printable(text, '\t\n')}${text === '' || text.endsWith('\n') ? '' : '\n'}${cut ? `[${cut} more bytes of output not kept]\n` : ''}`
  if (r.stdout || r.truncated?.stdout) process.stdout.write(block(r.stdout, r.truncated?.stdout))
  if (r.stderr || r.truncated?.stderr) process.stderr.write(block(r.stderr, r.truncated?.stderr))
}
