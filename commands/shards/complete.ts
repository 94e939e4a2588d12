import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {shardArg} from '../../src/cli/numbers.js'
import {progressMode, withProgress} from '../../src/cli/progress.js'
import {ExitCode, UserError, errorText} from '../../src/errors.js'
import {listJobs, type MoveJob} from '../../src/shards/move/jobs.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {completeMove} from '../../src/shards/move/run.js'

type Result = MoveJob | {completed: MoveJob[]; failed: {shard: number; error: string}[]}

export default class ShardsComplete extends FeedopsCommand<Result> {
  static override description = `Finish a shard's move: stop reverse replication and drop the old copy (its schema, slots, publications, subscriptions and fence). After this the move can no longer be reverted. --all does so for every switched move (after a rebalance run without --complete).`

  static override examples = ['<%= config.bin %> shards complete 12', '<%= config.bin %> shards complete --all', '<%= config.bin %> shards complete 12 --json']

  static override args = {shard: shardArg()}

  static override flags = {
    all: Flags.boolean({description: 'Complete every move that has switched and waits for complete or revert.'}),
  }

  async run(): Promise<Result> {
    const {args, flags} = await this.parse(ShardsComplete)
    if ((args.shard === undefined) === !flags.all) {
      throw new UserError('Give a shard number or --all (not both).', {fix: 'Run `feedops shards complete 12` or `feedops shards complete --all`.'})
    }
    const env = await openMoveEnv(this.loadConfig(flags), 'feedops shards complete')
    try {
      if (flags.all) {
        const flipped = (await listJobs(env.pools.catalog, {liveOnly: true})).filter((j) => j.status === 'flipped')
        if (flipped.length === 0) {
          this.log('No switched move waits for complete.')
          this.setExitCode(ExitCode.nothingDone)
          return {completed: [], failed: []}
        }
        const completed: MoveJob[] = []
        const failed: {shard: number; error: string}[] = []
        await withProgress(flipped.map((j) => `shard ${j.shard}`), progressMode(this.jsonEnabled()), async (progress) => {
          for (const j of flipped) {
            try {
              completed.push(await completeMove(env, j.shard, {onPhase: (_step, text) => progress.update(`shard ${j.shard}`, text)}))
              progress.done(`shard ${j.shard}`, true, `old copy on ${j.source} dropped`)
            } catch (err) {
              failed.push({shard: j.shard, error: errorText(err)})
              progress.done(`shard ${j.shard}`, false, errorText(err))
            }
          }
        })
        this.log(`${completed.length} of ${flipped.length} moves completed${failed.length ? `; failed: ${failed.map((f) => `shard ${f.shard} (${f.error})`).join(', ')}` : ''}.`)
        if (failed.length > 0) this.setExitCode(ExitCode.failed)
        return {completed, failed}
      }
      const job = await withProgress(['complete'], progressMode(this.jsonEnabled()), async (progress) => {
        const done = await completeMove(env, args.shard!, {onPhase: (step, text) => progress.update(step, text)})
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
