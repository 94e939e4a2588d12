import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import type {DeployResult} from '../src/deploy/run.js'
import {rollingFlags} from '../src/deploy/cli.js'

export default class Rollback extends FeedopsCommand<DeployResult> {
  static override description = `Switch every app host back to an earlier release, rolling and health-gated like deploy.

Without --to, each host goes back in its history (the audit lines on the host): to the release it ran
before the last run that changed it, skipping releases marked bad or abandoned (rolled away from, or left
by a run that failed or died) and those no longer on the host; a release that never ran is never picked.
--dry-run shows each host's target and where it came from. --to names one release for every host (every
host must have it; a marked one is taken with a warning). Every host on its target already: exit 3,
nothing to do. Same batches, gate, re-checks, bake, max-fail, lock, audit and exit codes as deploy.`

  static override examples = [
    '<%= config.bin %> rollback',
    '<%= config.bin %> rollback --dry-run',
    '<%= config.bin %> rollback --to 20261201T075501Z-ab12cd3',
    '<%= config.bin %> rollback --batch 100% --bake 0 --json',
  ]

  static override flags = {
    ...rollingFlags,
    to: Flags.string({description: 'The release to go back to (see `feedops releases`).'}),
  }

  async run(): Promise<DeployResult> {
    const {flags} = await this.parse(Rollback)
    const {runRolling} = await import('../src/deploy/cli.js')
    const {renderDeploy} = await import('../src/deploy/render.js')
    const result = await runRolling(this.loadConfig(flags), flags, 'rollback', {
      json: this.jsonEnabled(),
      ...(flags.to !== undefined ? {to: flags.to} : {}),
    })
    if (!this.jsonEnabled()) process.stdout.write(renderDeploy(result))
    return result
  }
}
