import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import type {DeployResult} from '../src/deploy/run.js'
import {rollingFlags} from '../src/deploy/cli.js'

export default class Rollback extends FeedopsCommand<DeployResult> {
  static override description = `Switch every app host back to an earlier release, rolling and health-gated like deploy.

Without --to, the target is the newest release older than the one current points at (and not marked bad)
on the lock host. Every host must still have it, or nothing changes and the hosts lacking it are named.
Same batches, gate, max-fail, lock, audit and exit codes as deploy.`

  static override examples = ['<%= config.bin %> rollback', '<%= config.bin %> rollback --to 20261201T075501Z-ab12cd3', '<%= config.bin %> rollback --batch 100% --json']

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
      ...(flags.to ? {to: flags.to} : {}),
    })
    if (!this.jsonEnabled()) process.stdout.write(renderDeploy(result))
    return result
  }
}
