import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
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
    role: Flags.string({description: 'Only hosts with this role.', exclusive: ['hosts']}),
    hosts: Flags.string({description: 'Only these hosts (names or addresses, comma-separated).'}),
    concurrency: Flags.string({description: 'Hosts worked on at once, 1..1024 (default: ssh.concurrency).'}),
    timeout: Flags.string({description: 'Kill the command on a host after S seconds (default: ssh.commandTimeout; 0 = none).'}),
    'connect-timeout': Flags.string({description: 'Give up connecting to a host after S seconds (default: ssh.connectTimeout).'}),
    'accept-new': Flags.boolean({description: 'Record the key of a host not yet in known_hosts instead of refusing it (a changed key is always refused).'}),
    group: Flags.boolean({description: "Print each host's output in one block when it finishes, instead of line by line."}),
  }

  async run(): Promise<RunResult> {
    const {flags, argv} = await this.parse(Run)
    const command = (argv as string[]).join(' ').trim()
    if (command === '') {
      throw new UserError('No command to run.', {fix: 'Put the command after `--`, e.g. `feedops run -- uptime`.'})
    }
    const ssh = await import('../src/ssh/index.js')
    const {openSession, runCommand, trapInterrupts, PrefixedLines, formatRunSummary, summarize, formatDuration, parseIntegerOption, splitList} = ssh
    const concurrency = parseIntegerOption(flags.concurrency, '--concurrency', {min: 1, max: 1024})
    const timeout = parseIntegerOption(flags.timeout, '--timeout', {min: 0})
    const connectTimeout = parseIntegerOption(flags['connect-timeout'], '--connect-timeout', {min: 1})
    const loaded = this.loadConfig(flags)
    const started = performance.now()
    const {hosts, pool} = await openSession(loaded.env, {
      ...(flags.role ? {role: flags.role} : {}),
      ...(flags.hosts ? {hosts: splitList(flags.hosts)} : {}),
      acceptNew: flags['accept-new'],
      ...(connectTimeout !== undefined ? {connectTimeout} : {}),
    })

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

    const trap = trapInterrupts((sig) => {
      if (!json) process.stderr.write(`\n${sig === 'SIGINT' ? 'Interrupted' : 'Terminated'}: closing every connection (again to quit at once)\n`)
      pool.close({abort: true})
    })
    let results: HostResult[]
    try {
      results = await runCommand(hosts, command, {
        pool,
        concurrency: concurrency ?? loaded.env.ssh.concurrency,
        timeoutMs: (timeout ?? loaded.env.ssh.commandTimeout) * 1000,
        signal: trap.signal,
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
    } finally {
      trap.dispose()
      pool.close()
    }

    const durationMs = Math.round(performance.now() - started)
    const result: RunResult = {
      command,
      results,
      summary: summarize(results),
      connections: {...pool.stats},
      durationMs,
      interrupted: trap.received ?? null,
    }
    if (!json) process.stderr.write(`\n${formatRunSummary(results, durationMs)}`)
    if (trap.received) process.exitCode = 130
    else if (result.summary.failed > 0) this.setExitCode(ExitCode.failed)
    return result
  }
}

function printGroup(r: HostResult, formatDuration: (ms: number) => string): void {
  const what = r.exitCode !== null ? `exit ${r.exitCode}` : r.error ?? r.status
  process.stdout.write(`── ${r.host} (${what}, ${formatDuration(r.durationMs)}) ──\n`)
  if (r.stdout) process.stdout.write(r.stdout.endsWith('\n') ? r.stdout : `${r.stdout}\n`)
  if (r.stderr) process.stderr.write(r.stderr.endsWith('\n') ? r.stderr : `${r.stderr}\n`)
}
