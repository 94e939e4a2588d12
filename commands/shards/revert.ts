import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {shardArg} from '../../src/cli/numbers.js'
import {progressMode, withProgress} from '../../src/cli/progress.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {revertMove, type RevertResult} from '../../src/shards/move/run.js'

export default class ShardsRevert extends FeedopsCommand<RevertResult> {
  static override description = `Undo a shard's move: before its switch, drop the target's copy and streams (the shard never left); after it, move the shard back to its old server with the same cutover (fast: reverse replication kept the old copy current), then drop the target's copy. Before moving back it verifies the old copy as a cutover does and refuses, naming what differs, unless --force.`

  static override examples = ['<%= config.bin %> shards revert 12', '<%= config.bin %> shards revert 12 --force', '<%= config.bin %> shards revert 12 --json']

  static override flags = {
    force: Flags.boolean({description: 'Move back even when verify finds the old copy differs from the home (what differs is lost).'}),
  }

  static override args = {shard: shardArg({required: true})}

  async run(): Promise<RevertResult> {
    const {args, flags} = await this.parse(ShardsRevert)
    const env = await openMoveEnv(this.loadConfig(flags), 'feedops shards revert')
    try {
      const r = await withProgress(['revert'], progressMode(this.jsonEnabled()), async (progress) => {
        const reverted = await revertMove(env, args.shard, {onPhase: (step, text) => progress.update(step, text)}, {force: flags.force})
        progress.done('revert', true, reverted.movedBack ? `back on ${reverted.job.source}` : 'copy dropped')
        return reverted
      })
      this.log(
        r.movedBack
          ? `Shard ${r.job.shard} is back on ${r.job.source}${r.freezeMs === undefined ? '' : ` (writes held ${r.freezeMs.toFixed(1)} ms)`}; the copy on ${r.job.target} is dropped (job ${r.job.id} reverted).`
          : `Shard ${r.job.shard} stays on ${r.job.source}; the unfinished copy on ${r.job.target} is dropped (job ${r.job.id} reverted).`,
      )
      return r
    } finally {
      await env.close()
    }
  }
}
