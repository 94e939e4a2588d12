import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import {ExitCode} from '../src/errors.js'
import type {HostReleases} from '../src/deploy/status.js'

export default class Releases extends FeedopsCommand<{hosts: HostReleases[]}> {
  static override description = `Show, per app host, the release current points at, the release the running process reports, the releases present and those marked bad.

MATCH says DIFFERS when current and the running process disagree (a failed restart, a process left
over). Exit 1 when a host cannot be reached.`

  static override examples = ['<%= config.bin %> releases', '<%= config.bin %> releases --json']

  static override flags = {
    role: Flags.string({description: 'Hosts with this role (default: deploy.role, app).'}),
  }

  async run(): Promise<{hosts: HostReleases[]}> {
    const {flags} = await this.parse(Releases)
    const {openSession} = await import('../src/ssh/session.js')
    const {deploySettings} = await import('../src/deploy/run.js')
    const {listReleases} = await import('../src/deploy/status.js')
    const {renderReleases} = await import('../src/deploy/render.js')
    const loaded = this.loadConfig(flags)
    const {hosts, pool} = await openSession(loaded.env, {role: flags.role ?? deploySettings(loaded.env).role})
    try {
      const rows = await listReleases(loaded.env, hosts, pool)
      if (!this.jsonEnabled()) process.stdout.write(renderReleases(rows))
      if (rows.some((r) => r.error)) this.setExitCode(ExitCode.failed)
      return {hosts: rows}
    } finally {
      pool.close()
    }
  }
}
