import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {ExitCode} from '../../src/errors.js'
import {doctor, type Finding} from '../../src/shards/move/doctor.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {findingsTable} from '../../src/shards/move/render.js'

export default class ShardsDoctor extends FeedopsCommand<{findings: Finding[]; fixed: boolean}> {
  static override description = `Find what shard moves left behind: orphaned replication slots (they hold WAL forever), publications, subscriptions, half-made shard schemas, fences and freezes whose lease expired, jobs whose process died. With --fix, remove them. A schema the shard map points at is never touched.`

  static override examples = ['<%= config.bin %> shards doctor', '<%= config.bin %> shards doctor --fix', '<%= config.bin %> shards doctor --json']

  static override flags = {fix: Flags.boolean({description: 'Remove what was found.'})}

  async run(): Promise<{findings: Finding[]; fixed: boolean}> {
    const {flags} = await this.parse(ShardsDoctor)
    const env = await openMoveEnv(this.loadConfig(flags), 'feedops shards doctor')
    try {
      const findings = await doctor(env, {fix: flags.fix})
      if (findings.length === 0) {
        this.log('Nothing left behind by shard moves.')
        return {findings, fixed: flags.fix}
      }
      this.log(findingsTable(findings, flags.fix))
      const open = findings.filter((f) => !f.fixed).length
      this.log(flags.fix ? `${findings.length - open} of ${findings.length} fixed.` : `${findings.length} found; run with --fix to remove them.`)
      if (open > 0) this.setExitCode(ExitCode.failed)
      return {findings, fixed: flags.fix}
    } finally {
      await env.close()
    }
  }
}
