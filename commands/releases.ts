import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import {selectionFlags} from '../src/cli/host-flags.js'
import {ExitCode} from '../src/errors.js'
import type {HostReleases} from '../src/deploy/status.js'

export default class Releases extends FeedopsCommand<{hosts: HostReleases[]}> {
  static override description = `Show, per app host, the release current points at, the release the running process reports, the releases present and those marked bad.

MATCH says DIFFERS when current and the running process disagree (a failed restart, a process left
over). Exit 1 when a host cannot be reached.`

  static override examples = ['<%= config.bin %> releases', '<%= config.bin %> releases --json']

  static override flags = {
    ...selectionFlags,
    role: Flags.string({char: 'r', description: 'Hosts with this role (default: deploy.role, app).'}),
  }

  async run(): Promise<{hosts: HostReleases[]}> {
    const {flags} = await this.parse(Releases)
    const {withHostSession} = await import('../src/cli/host-session.js')
    const {deploySettings} = await import('../src/deploy/run.js')
    const {listReleases} = await import('../src/deploy/status.js')
    const {renderReleases} = await import('../src/deploy/render.js')
    const loaded = this.loadConfig(flags)
    const role = deploySettings(loaded.env).role
    const {value: rows} = await withHostSession(loaded.env, flags, {quiet: this.jsonEnabled(), defaultSelection: (all) => all.filter((h) => h.roles.includes(role))}, (s) =>
      listReleases(loaded.env, s.hosts, s.pool),
    )
    if (!this.jsonEnabled()) process.stdout.write(renderReleases(rows))
    if (rows.some((r) => r.error)) this.setExitCode(ExitCode.failed)
    return {hosts: rows}
  }
}
