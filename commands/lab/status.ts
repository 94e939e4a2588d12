import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {defaultLabDir} from '../../src/config/load.js'
import {ExitCode} from '../../src/errors.js'
import {labStatus, type LabStatus} from '../../src/lab/index.js'
import {labStatusTable, labSummary} from '../../src/lab/render.js'

export default class LabStatusCommand extends FeedopsCommand<LabStatus> {
  static override description = `Show every process of the lab: component, address, pid, and whether it still runs.

Exit code 0 when everything is up, 1 when some process is down, 3 when nothing runs (or there is no lab).`

  static override examples = ['<%= config.bin %> lab status', '<%= config.bin %> lab status --dir /tmp/lab2 --json']

  static override flags = {
    dir: Flags.string({description: 'Lab dir (default: $FEEDOPS_LAB_DIR or ./.lab).'}),
  }

  async run(): Promise<LabStatus> {
    const {flags} = await this.parse(LabStatusCommand)
    const status = await labStatus(flags.dir ?? defaultLabDir())
    if (status.processes.length > 0) this.log(labStatusTable(status))
    this.log(labSummary(status))
    if (status.state === 'partial') this.setExitCode(ExitCode.failed)
    if (status.state === 'down' || status.state === 'none') this.setExitCode(ExitCode.nothingDone)
    return status
  }
}
