import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import {hostsWithRole, selectionFlags} from '../src/cli/host-flags.js'
import {ExitCode} from '../src/errors.js'
import type {FleetStatus} from '../src/deploy/status.js'
import type {ReleaseCheck} from '../src/deploy/verify.js'

interface ReleasesResult extends FleetStatus {
  /** With --verify: each host's current release checked against what was built. */
  verified?: ReleaseCheck[]
}

export default class Releases extends FeedopsCommand<ReleasesResult> {
  static override description = `Show, per app host, the release current points at, the release the running process reports, the releases present and those marked bad.

MATCH says DIFFERS when current and the running process disagree (a failed restart, a process left
over); RESTARTS counts the app's restarts by its supervisor since it started (a crash loop shows here).
Below the table: the fleet's deploy lock (free, held or stale: owner, age), runs that took the lock and
never finished (who, when, which hosts they switched), and, when the hosts run several releases, the
command that brings them back to one. Exit 1 when a host cannot be reached. --json prints {hosts, lock,
unfinished, split}, and with --verify {verified}.

--verify also checks every file of each host's current release against its manifest (sha256), that the
release holds nothing else, its links, its compile cache (when this machine has the build) and its runtime's
node binary (against the registry's package), and names what differs. Exit 1 when anything differs.`

  static override examples = ['<%= config.bin %> releases', '<%= config.bin %> releases --verify', '<%= config.bin %> releases --json']

  static override flags = {
    ...selectionFlags,
    role: Flags.string({char: 'r', description: 'Hosts with this role (default: deploy.role, app).'}),
    verify: Flags.boolean({description: "Check each host's current release, file by file, and its runtime against what was built."}),
  }

  async run(): Promise<ReleasesResult> {
    const {flags} = await this.parse(Releases)
    const {withHostSession} = await import('../src/cli/host-session.js')
    const {deploySettings} = await import('../src/deploy/run.js')
    const {listReleases} = await import('../src/deploy/status.js')
    const {renderReleases} = await import('../src/deploy/render.js')
    const loaded = this.loadConfig(flags)
    const settings = deploySettings(loaded.env)
    const role = settings.role
    const {value} = await withHostSession(loaded.env, flags, {quiet: this.jsonEnabled(), defaultSelection: hostsWithRole(role, `deploy.role in ${loaded.file}`)}, async (s) => {
      // The lock lives on the first host of the role in the whole inventory, as deploy takes it.
      const status: ReleasesResult = await listReleases(loaded.env, s.hosts, s.pool, s.inventory.find((h) => h.roles.includes(role)) ?? s.hosts[0])
      if (!flags.verify) return status
      const {verifyFleet} = await import('../src/deploy/verify.js')
      const {feedopsCacheDir} = await import('../src/deploy/runtime.js')
      return {...status, verified: await verifyFleet(loaded.env, s.hosts, s.pool, {cacheDir: feedopsCacheDir(), path: settings.path, runtime: settings.runtime})}
    })
    if (!this.jsonEnabled()) {
      process.stdout.write(renderReleases(value))
      if (value.verified) {
        const {renderVerify} = await import('../src/deploy/verify.js')
        process.stdout.write(renderVerify(value.verified))
      }
    }
    if (value.hosts.some((r) => r.error) || value.verified?.some((v) => !v.ok)) this.setExitCode(ExitCode.failed)
    return value
  }
}
