import {Args, Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import {printable} from '../src/cli/escape.js'
import {hostFlags, roleFlag} from '../src/cli/host-flags.js'
import {withHostSession} from '../src/cli/host-session.js'
import {progressMode, withProgress} from '../src/cli/progress.js'
import {textTable} from '../src/cli/text-table.js'
import {ExitCode, UserError} from '../src/errors.js'
import type {Playbook} from '../src/playbook/define.js'
import type {PlaybookHostResult, PlaybookRunResult} from '../src/playbook/run.js'

export interface PlaybookListResult {
  playbooks: {name: string; description: string; roles: string[]; steps: string[]}[]
}

export type PlayResult = (PlaybookRunResult & {interrupted: string | null}) | PlaybookListResult

export default class Play extends FeedopsCommand<PlayResult> {
  static override description = `Run a playbook (a typed, Fabric-style list of steps) on many hosts at once.

Hosts run in parallel, each host's steps in order over one SSH connection; a step that fails stops that
host, the others carry on. Playbooks live in playbooks/*.ts and are listed in playbooks/index.ts.
Exit code 1 when any host failed a step or could not be reached.`

  static override examples = [
    '<%= config.bin %> play --list',
    '<%= config.bin %> play facts',
    '<%= config.bin %> play check --role app --json',
  ]

  static override args = {
    name: Args.string({description: 'Playbook to run (see --list).'}),
  }

  static override flags = {
    list: Flags.boolean({description: 'List the playbooks and exit.'}),
    ...hostFlags,
    role: roleFlag('Only hosts with this role (default: the roles the playbook names).'),
  }

  async run(): Promise<PlayResult> {
    const {flags, args} = await this.parse(Play)
    const {playbooks} = await import('../playbooks/index.js')
    if (flags.list) return this.list(playbooks)
    if (!args.name) {
      throw new UserError('Which playbook?', {fix: `Name one: ${playbooks.map((p) => p.name).join(', ')} (see \`feedops play --list\`).`})
    }
    const {findPlaybook, playbookHosts, runPlaybook} = await import('../src/playbook/run.js')
    const {formatDuration} = await import('../src/ssh/index.js')
    const playbook = findPlaybook(playbooks, args.name)
    const loaded = this.loadConfig(flags)
    const json = this.jsonEnabled()
    const steps = playbook.steps.length

    const {value: run, interrupted} = await withHostSession(
      loaded.env,
      flags,
      {quiet: json, defaultSelection: (all) => playbookHosts(playbook, all, {})},
      ({hosts, pool, signal, concurrency, timeoutMs}) =>
        withProgress(
          hosts.map((h) => h.name),
          progressMode(json),
          (progress) =>
            runPlaybook(playbook, hosts, {
              pool,
              config: loaded.env,
              concurrency,
              timeoutMs,
              signal,
              onEvent: (e) => {
                const name = e.host.name
                if (e.type === 'connecting') progress.update(name, 'connecting')
                else if (e.type === 'step') progress.update(name, `[${e.index + 1}/${steps}] ${e.title}`)
                else if (e.type === 'progress') progress.update(name, e.text)
                else progress.done(name, e.result.ok, e.result.ok ? `done in ${formatDuration(e.result.durationMs)}` : (e.result.error ?? e.result.status))
              },
            }),
        ),
    )

    const result = {...run, interrupted}
    if (!json) {
      this.render(playbook, run.results)
      const s = run.summary
      const parts = [`${s.ok} ok`, `${s.failed} failed`, ...(s.interrupted > 0 ? [`${s.interrupted} interrupted`] : [])]
      process.stderr.write(
        `${playbook.name}: ${parts.join(', ')} (${s.hosts} host${s.hosts === 1 ? '' : 's'}) in ${formatDuration(run.durationMs)}, ${run.connections.connections} connection${run.connections.connections === 1 ? '' : 's'}\n`,
      )
    }
    if (interrupted) this.setExitCode(ExitCode.interrupted)
    else if (run.summary.failed > 0) this.setExitCode(ExitCode.failed)
    return result
  }

  private list(playbooks: readonly Playbook[]): PlaybookListResult {
    const result: PlaybookListResult = {
      playbooks: playbooks.map((p) => ({name: p.name, description: p.description, roles: [...(p.roles ?? [])], steps: p.steps.map((s) => s.title)})),
    }
    const width = Math.max(...result.playbooks.map((p) => p.name.length))
    for (const p of result.playbooks) {
      this.log(`${p.name.padEnd(width)}  ${p.description}${p.roles.length > 0 ? ` (roles: ${p.roles.join(', ')})` : ''}`)
    }
    return result
  }

  /** A table on a terminal, else one plain line per host. */
  private render(playbook: Playbook, results: PlaybookHostResult[]): void {
    const failure = (r: PlaybookHostResult) => (r.status === 'interrupted' ? 'interrupted' : `FAILED ${r.error ?? r.status}`)
    const tty = Boolean(process.stdout.isTTY)
    if (playbook.report) {
      const columns = [...new Set(results.flatMap((r) => Object.keys(r.report ?? {})))]
      if (tty) {
        const rows = results.map((r) => (r.report ? [r.host, ...columns.map((c) => r.report![c] ?? '')] : [r.host, failure(r)]))
        process.stdout.write(textTable(['HOST', ...columns.map((c) => c.toUpperCase())], rows))
      } else {
        for (const r of results) {
          const body = r.report ? Object.entries(r.report).map(([k, v]) => `${k}=${v}`).join(' | ') : failure(r)
          this.log(`${r.host} | ${printable(body)}`)
        }
      }
      return
    }
    const line = (r: PlaybookHostResult) =>
      r.ok ? `ok (${r.steps.length} step${r.steps.length === 1 ? '' : 's'}, ${(r.durationMs / 1000).toFixed(2)} s)` : failure(r)
    if (tty) process.stdout.write(textTable(['HOST', 'RESULT'], results.map((r) => [r.host, line(r)])))
    else for (const r of results) this.log(`${r.host} | ${printable(line(r))}`)
  }
}
