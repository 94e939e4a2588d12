import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {ExitCode} from '../../src/errors.js'
import {doctor, type Finding} from '../../src/shards/move/doctor.js'
import {settleFences, type FenceRepair} from '../../src/shards/move/fences.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {fenceRepairsText, findingsTable} from '../../src/shards/move/render.js'

export default class ShardsDoctor extends FeedopsCommand<{findings: Finding[]; fixed: boolean; fences: FenceRepair[]}> {
  static override description = `Find what shard moves left behind: orphaned replication slots (they hold WAL forever), publications, subscriptions, half-made shard schemas, fences and freezes whose lease expired, jobs whose process died. With --fix, remove them. A schema the shard map points at is never touched.

With or without --fix, it first puts the fences of live moves where the map says they belong (a move or revert that died just after switching the map), and says what it changed.`

  static override examples = ['<%= config.bin %> shards doctor', '<%= config.bin %> shards doctor --fix', '<%= config.bin %> shards doctor --json']

  static override flags = {fix: Flags.boolean({description: 'Remove what was found.'})}

  async run(): Promise<{findings: Finding[]; fixed: boolean; fences: FenceRepair[]}> {
    const {flags} = await this.parse(ShardsDoctor)
    const env = await openMoveEnv(this.loadConfig(flags), 'feedops shards doctor')
    try {
      // Always, --fix or not: it only puts fences where the map says they belong (see settleFences).
      const fences = await settleFences(env)
      if (fences.length > 0) this.log(fenceRepairsText(fences))
      const findings = await doctor(env, {fix: flags.fix})
      if (findings.length === 0) {
        this.log('Nothing left behind by shard moves.')
        return {findings, fixed: flags.fix, fences}
      }
      this.log(findingsTable(findings, flags.fix))
      const open = findings.filter((f) => !f.fixed).length
      this.log(flags.fix ? `${findings.length - open} of ${findings.length} fixed.` : `${findings.length} found; run with --fix to remove them.`)
      if (open > 0) this.setExitCode(ExitCode.failed)
      return {findings, fixed: flags.fix, fences}
    } finally {
      await env.close()
    }
  }
}
