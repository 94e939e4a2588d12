import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import type {DeployResult} from '../src/deploy/run.js'
import {rollingFlags} from '../src/deploy/cli.js'

export default class Deploy extends FeedopsCommand<DeployResult> {
  static override description = `Build the feed app once and roll it out to every app host, health-gated, re-checked and baked.

The lock first (exit 3 when held, or --lock-wait), before the build; then, under it, every host's state
read and a \`started\` line written to its audit.log; preflight (config, every host reachable with a known
key, free disk, the bundle builds): nothing changes unless all of it passes (a build whose inputs are all
unchanged reuses its bundle; --rebuild builds anew). The release (app + supervising process manager +
manifest, on a pinned Node runtime uploaded only where missing) is shipped to every host at once, then each
batch (canary first) switches current, restarts, and must answer /readyz 200 reporting the new release id;
the canary from one pid for deploy.health.canaryStableMs. Every host that passed is re-checked every second
and after each batch (same release, same pid: a crash restarted by the supervisor is a new pid), and after
the last batch the whole fleet is watched deploy.bakeSeconds (--bake). A host failing its gate or a
re-check is switched back at once; past --max-fail every switched host is rolled back, the release is
marked bad where it failed and abandoned elsewhere (exit 1). Exit 0 only for a fleet checked at the end.
Ctrl-C starts no new host, switches back hosts in flight, unlocks and prints the summary (exit 130).
--json prints {action, run, operator, release, plan, ok, stopped, hosts: [{host, outcome, previous,
current, target, pid, phases: [{phase, startMs, ms, ok}]}], markedBad, markedAbandoned, unfinished,
bakedMs, durationMs}.`

  static override examples = [
    '<%= config.bin %> deploy',
    '<%= config.bin %> deploy --dry-run',
    "<%= config.bin %> deploy --batch 1,50% --max-fail 10% -m 'feed ranking fix'",
    '<%= config.bin %> deploy --lock-wait 120 --json',
    '<%= config.bin %> deploy --rebuild',
    '<%= config.bin %> deploy --bake 60',
    '<%= config.bin %> deploy --batch 100% --bake 0',
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
