import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import {hostsWithRole, selectionFlags} from '../src/cli/host-flags.js'
import {ExitCode} from '../src/errors.js'
import type {AuditReport} from '../src/deploy/status.js'

export default class Audit extends FeedopsCommand<AuditReport> {
  static override description = `Show every deploy and rollback: one line per run from each host's audit.log and from the local log.

Each line says when, where it was read (a host or local), who, what, the release, the result and the
hosts' outcomes. The local log is this fleet's: one per environment and inventory (two labs, both called
\`lab\`, keep apart), named on the first line. Exit 1 when a host cannot be reached (its lines are missing).`

  static override examples = ['<%= config.bin %> audit', '<%= config.bin %> audit --json']

  static override flags = {
    ...selectionFlags,
    role: Flags.string({char: 'r', description: 'Hosts with this role (default: deploy.role, app).'}),
  }

  async run(): Promise<AuditReport> {
    const {flags} = await this.parse(Audit)
    const {withHostSession} = await import('../src/cli/host-session.js')
    const {deploySettings} = await import('../src/deploy/run.js')
    const {readAudit} = await import('../src/deploy/status.js')
    const {renderAudit} = await import('../src/deploy/render.js')
    const loaded = this.loadConfig(flags)
    const role = deploySettings(loaded.env).role
    const {value: report} = await withHostSession(loaded.env, flags, {quiet: this.jsonEnabled(), defaultSelection: hostsWithRole(role, `deploy.role in ${loaded.file}`)}, (s) =>
      readAudit(loaded.env, s.hosts, s.pool, loaded.environment),
    )
    if (!this.jsonEnabled()) {
      process.stdout.write(`local log: ${report.local.file} (environment ${report.local.environment}, inventory ${report.local.inventory})\n`)
      process.stdout.write(renderAudit(report.entries))
      for (const u of report.unreachable) process.stderr.write(`${u.host}: unreachable (${u.error})\n`)
    }
    if (report.unreachable.length > 0) this.setExitCode(ExitCode.failed)
    return report
  }
}
