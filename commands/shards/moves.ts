import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {settleFences, type FenceRepair} from '../../src/shards/move/fences.js'
import {failOrphanedJobs, listJobs, type MoveJob} from '../../src/shards/move/jobs.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {fenceRepairsText, jobsTable, orphanedJobsText} from '../../src/shards/move/render.js'

interface MovesResult {
  jobs: MoveJob[]
  /** Fences put where the map says they belong. */
  fences: FenceRepair[]
  /** Jobs that were marked running by a process that is gone, now marked failed. */
  orphaned: MoveJob[]
}

export default class ShardsMoves extends FeedopsCommand<MovesResult> {
  static override description = `List shard move jobs from the catalog: phase, status, freeze time, owner and last error.

A job marked running whose process is gone (killed, or cut off from the catalog) is marked failed, so it shows as resumable. It also puts the fences of live moves where the map says they belong, for a move or revert whose process died just after switching the map (see \`shards doctor\`), and says what it changed.`

  static override examples = ['<%= config.bin %> shards moves', '<%= config.bin %> shards moves --live', '<%= config.bin %> shards moves --json']

  static override flags = {
    live: Flags.boolean({description: 'Only jobs still running, failed (resumable) or switched (waiting for complete or revert).'}),
  }

  async run(): Promise<MovesResult> {
    const {flags} = await this.parse(ShardsMoves)
    const env = await openMoveEnv(this.loadConfig(flags), 'feedops shards moves')
    try {
      // Nothing here takes a lock the app could wait on: no migration, only reads and row updates of moves.
      const orphaned = await failOrphanedJobs(env.pools.catalog)
      const fences = await settleFences(env)
      const jobs = await listJobs(env.pools.catalog, {liveOnly: flags.live})
      this.log(jobs.length === 0 ? 'No shard moves yet.' : jobsTable(jobs))
      if (orphaned.length > 0) this.log(orphanedJobsText(orphaned))
      if (fences.length > 0) this.log(fenceRepairsText(fences))
      return {jobs, fences, orphaned}
    } finally {
      await env.close()
    }
  }
}
