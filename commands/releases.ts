import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import {selectionFlags} from '../src/cli/host-flags.js'
import {ExitCode} from '../src/errors.js'
import type {FleetStatus} from '../src/deploy/status.js'

export default class Releases extends FeedopsCommand<FleetStatus> {
  static override description = `Show, per app host, the release current points at, the release the running process reports, the releases present and those marked bad.

MATCH says DIFFERS when current and the running process disagree (a failed restart, a process left
over); RESTARTS counts the app's restarts by its supervisor since it started (a crash loop shows here).
Below the table: the fleet's deploy lock (free, held or stale: owner, age), runs that took the lock and
never finished (who, when, which hosts they switched), and, when the hosts run several releases, the
command that brings them back to one. Exit 1 when a host cannot be reached. --json prints {hosts, lock,
unfinished, split}.`

  static override examples = ['<%= config.bin %> releases', '<%= config.bin %> releases --json']

  static override flags = {
    ...selectionFlags,
    role: Flags.string({char: 'r', description: 'Hosts with this role (default: deploy.role, app).'}),
  }

  async run(): Promise<FleetStatus> {
    const {flags} = await this.parse(Releases)
    const {withHostSession} = await import('../src/cli/host-session.js')
    const {deploySettings} = await import('../src/deploy/run.js')
    const {listReleases} = await import('../src/deploy/status.js')
    const {renderReleases} = await import('../src/deploy/render.js')
    const loaded = this.loadConfig(flags)
    const role = deploySettings(loaded.env).role
    const {value: status} = await withHostSession(loaded.env, flags, {quiet: this.jsonEnabled(), defaultSelection: (all) => all.filter((h) => h.roles.includes(role))}, (s) =>
      // The lock lives on the first host of the role in the whole inventory, as deploy takes it.
      listReleases(loaded.env, s.hosts, s.pool, s.inventory.find((h) => h.roles.includes(role)) ?? s.hosts[0]),
    )
    if (!this.jsonEnabled()) process.stdout.write(renderReleases(status))
    if (status.hosts.some((r) => r.error)) this.setExitCode(ExitCode.failed)
    return status
  }
}
