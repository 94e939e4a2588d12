import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {resolveLabDir} from '../../src/config/load.js'
import {ExitCode} from '../../src/errors.js'
import {labStatus, type LabStatus} from '../../src/lab/index.js'
import {labStatusTable, labSummary} from '../../src/lab/render.js'

export default class LabStatusCommand extends FeedopsCommand<LabStatus> {
  static override description = `Show every process of the lab: component, address, pid, and whether it still runs.

Exit code 0 when everything is up, 1 when some process is down, 3 when nothing runs (or there is no lab).`

  static override examples = ['<%= config.bin %> lab status', '<%= config.bin %> lab status --dir /tmp/lab2 --json', 'FEEDOPS_CONFIG=/tmp/lab2/feedops.yml <%= config.bin %> lab status']

  static override flags = {
    dir: Flags.string({description: 'Lab dir (default: the lab.dir of --config or $FEEDOPS_CONFIG if given, else $FEEDOPS_LAB_DIR or ./.lab).'}),
  }

  async run(): Promise<LabStatus> {
    const {flags} = await this.parse(LabStatusCommand)
    const status = await labStatus(resolveLabDir({dir: flags.dir, config: {flag: flags.config, environment: flags.env}}))
    if (status.processes.length > 0) this.log(labStatusTable(status))
    this.log(labSummary(status))
    if (status.state === 'partial') this.setExitCode(ExitCode.failed)
    if (status.state === 'down' || status.state === 'none') this.setExitCode(ExitCode.nothingDone)
    return status
  }
}
