import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {resolveLabDir} from '../../src/config/load.js'
import {ExitCode} from '../../src/errors.js'
import {labDown, type LabStatus} from '../../src/lab/index.js'
import {labStatusTable, labSummary} from '../../src/lab/render.js'

export default class LabDown extends FeedopsCommand<LabStatus> {
  static override description = `Stop every process the lab started, by the pids in its state.json (each checked to still be the same process first).

Postgres stops with \`pg_ctl stop -m fast\`; the rest get TERM, then KILL after a timeout. No file is removed: data dirs, host folders and keys stay for the next \`lab up\`.`

  static override examples = ['<%= config.bin %> lab down', '<%= config.bin %> lab down --dir /tmp/lab2 --json', '<%= config.bin %> lab down --config /tmp/lab2/feedops.yml']

  static override flags = {
    dir: Flags.string({description: 'Lab dir (default: the lab.dir of --config or $FEEDOPS_CONFIG if given, else $FEEDOPS_LAB_DIR or ./.lab).'}),
  }

  async run(): Promise<LabStatus> {
    const {flags} = await this.parse(LabDown)
    const status = await labDown(resolveLabDir({dir: flags.dir, config: {flag: flags.config, environment: flags.env}}))
    if (status.state === 'none') {
      this.log(`${labSummary(status)} Nothing to stop.`)
      this.setExitCode(ExitCode.nothingDone)
      return status
    }
    this.log(labStatusTable(status))
    const still = status.processes.filter((p) => p.alive)
    if (still.length > 0) {
      this.log(`Could not stop ${still.map((p) => p.name).join(', ')}; see their logs.`)
      this.setExitCode(ExitCode.failed)
    } else {
      this.log(`Lab ${status.dir} stopped (${status.processes.length} processes).`)
    }
    return status
  }
}
