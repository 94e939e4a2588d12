import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {ensureCatalog} from '../../src/shards/catalog.js'
import {listJobs, type MoveJob} from '../../src/shards/move/jobs.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {jobsTable} from '../../src/shards/move/render.js'

export default class ShardsMoves extends FeedopsCommand<{jobs: MoveJob[]}> {
  static override description = 'List shard move jobs from the catalog: phase, status, freeze time, owner and last error.'

  static override examples = ['<%= config.bin %> shards moves', '<%= config.bin %> shards moves --live', '<%= config.bin %> shards moves --json']

  static override flags = {
    live: Flags.boolean({description: 'Only jobs still running, failed (resumable) or switched (waiting for complete or revert).'}),
  }

  async run(): Promise<{jobs: MoveJob[]}> {
    const {flags} = await this.parse(ShardsMoves)
    const env = await openMoveEnv(this.loadConfig(flags), 'feedops shards moves')
    try {
      const c = await env.pools.catalog.connect()
      let jobs: MoveJob[]
      try {
        await ensureCatalog(c)
        jobs = await listJobs(c, {liveOnly: flags.live})
      } finally {
        c.release()
      }
      this.log(jobs.length === 0 ? 'No shard moves yet.' : jobsTable(jobs))
      return {jobs}
    } finally {
      await env.close()
    }
  }
}
