import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import type {DeployResult} from '../src/deploy/run.js'
import {rollingFlags} from '../src/deploy/cli.js'

export default class Deploy extends FeedopsCommand<DeployResult> {
  static override description = `Build the feed app once and roll it out to every app host, health-gated.

Preflight first (config, every host reachable with a known key, free disk, the lock, the bundle builds):
nothing changes unless all of it passes (a build whose inputs are all unchanged since the last one reuses
its bundle; --rebuild builds anew). The release (app + process manager + manifest, on a pinned Node
runtime uploaded only where missing) is shipped to every host at once, then each batch (canary first)
switches current, restarts, and must answer /readyz 200 reporting the new release id. A host failing its
gate is switched back at once; past --max-fail every switched host is rolled back and the release is
marked bad (exit 1). One lock per fleet (exit 3 when held); Ctrl-C starts no new host, switches back
hosts in flight, unlocks and prints the summary (exit 130). --json prints {action, release, plan, ok,
stopped, hosts: [{host, outcome, previous, current, phases: [{phase, startMs, ms, ok}]}], durationMs}.`

  static override examples = [
    '<%= config.bin %> deploy',
    '<%= config.bin %> deploy --dry-run',
    "<%= config.bin %> deploy --batch 1,50% --max-fail 10% -m 'feed ranking fix'",
    '<%= config.bin %> deploy --lock-wait 120 --json',
    '<%= config.bin %> deploy --rebuild',
  ]

  static override flags = {
    ...rollingFlags,
    rebuild: Flags.boolean({description: 'Build the bundle from the sources even if none changed since the last build (which is otherwise reused).'}),
  }

  async run(): Promise<DeployResult> {
    const {flags} = await this.parse(Deploy)
    const {runRolling} = await import('../src/deploy/cli.js')
    const {renderDeploy} = await import('../src/deploy/render.js')
    const result = await runRolling(this.loadConfig(flags), flags, 'deploy', {json: this.jsonEnabled()})
    if (!this.jsonEnabled()) process.stdout.write(renderDeploy(result))
    return result
  }
}
