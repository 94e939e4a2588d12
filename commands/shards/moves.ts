import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {ensureCatalog} from '../../src/shards/catalog.js'
import {settleFences, type FenceRepair} from '../../src/shards/move/fences.js'
import {listJobs, type MoveJob} from '../../src/shards/move/jobs.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {fenceRepairsText, jobsTable} from '../../src/shards/move/render.js'

export default class ShardsMoves extends FeedopsCommand<{jobs: MoveJob[]; fences: FenceRepair[]}> {
  static override description = `List shard move jobs from the catalog: phase, status, freeze time, owner and last error.

It also puts the fences of live moves where the map says they belong, for a move or revert whose process died just after switching the map (see \`shards doctor\`), and says what it changed.`

  static override examples = ['<%= config.bin %> shards moves', '<%= config.bin %> shards moves --live', '<%= config.bin %> shards moves --json']

  static override flags = {
    live: Flags.boolean({description: 'Only jobs still running, failed (resumable) or switched (waiting for complete or revert).'}),
  }

  async run(): Promise<{jobs: MoveJob[]; fences: FenceRepair[]}> {
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
      const fences = await settleFences(env)
      this.log(jobs.length === 0 ? 'No shard moves yet.' : jobsTable(jobs))
      if (fences.length > 0) this.log(fenceRepairsText(fences))
      return {jobs, fences}
    } finally {
      await env.close()
    }
  }
}
