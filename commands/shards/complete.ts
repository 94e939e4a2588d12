import {FeedopsCommand} from '../../src/cli/base-command.js'
import {shardArg} from '../../src/cli/numbers.js'
import {progressMode, withProgress} from '../../src/cli/progress.js'
import type {MoveJob} from '../../src/shards/move/jobs.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {completeMove} from '../../src/shards/move/run.js'

export default class ShardsComplete extends FeedopsCommand<MoveJob> {
  static override description = `Finish a shard's move: stop reverse replication and drop the old copy (its schema, slots, publications, subscriptions and fence). After this the move can no longer be reverted.`

  static override examples = ['<%= config.bin %> shards complete 12', '<%= config.bin %> shards complete 12 --json']

  static override args = {shard: shardArg({required: true})}

  async run(): Promise<MoveJob> {
    const {args, flags} = await this.parse(ShardsComplete)
    const env = await openMoveEnv(this.loadConfig(flags), 'feedops shards complete')
    try {
      const job = await withProgress(['complete'], progressMode(this.jsonEnabled()), async (progress) => {
        const done = await completeMove(env, args.shard, {onPhase: (step, text) => progress.update(step, text)})
        progress.done('complete', true, `old copy on ${done.source} dropped`)
        return done
      })
      this.log(`Shard ${job.shard} lives on ${job.target} only; the old copy on ${job.source} is dropped (job ${job.id} completed).`)
      return job
    } finally {
      await env.close()
    }
  }
}
