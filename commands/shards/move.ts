import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {shardArg} from '../../src/cli/numbers.js'
import {trapInterrupts} from '../../src/cli/interrupts.js'
import {itemProgress, progressMode} from '../../src/cli/progress.js'
import {ExitCode} from '../../src/errors.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {PHASE_NAMES} from '../../src/shards/move/phases.js'
import {moveSummary} from '../../src/shards/move/render.js'
import {moveShard, type MoveResult} from '../../src/shards/move/run.js'

export default class ShardsMove extends FeedopsCommand<MoveResult> {
  static override description = `Move a logical shard to another physical Postgres server, with no lost write.

Phases: preflight, schema on the target, copy (logical replication), catch-up, verify (row counts and hashes at one consistent point), cutover (freeze, fence the old copy, wait for the last changes, flip the map), reverse replication. The shard's writes are held only during the cutover (bounded by moves.freezeLeaseMs). The old copy stays fenced and in sync until \`shards complete\` (or \`shards revert\` moves the shard back). Run the same command again after a crash or Ctrl-C: it resumes the job, or cleans up and starts over, and says which.`

  static override examples = [
    '<%= config.bin %> shards move 12 --to pg2',
    '<%= config.bin %> shards move 12 --to pg2 --prepare',
    '<%= config.bin %> shards move 12 --to pg2 --json',
  ]

  static override args = {shard: shardArg({required: true})}

  static override flags = {
    to: Flags.string({description: 'Physical server (a name from env.shards.servers) to move the shard to.', required: true}),
    prepare: Flags.boolean({description: 'Copy and catch up, then stop before verify and the cutover (run again without it to switch).'}),
  }

  async run(): Promise<MoveResult> {
    const {args, flags} = await this.parse(ShardsMove)
    const env = await openMoveEnv(this.loadConfig(flags), 'feedops shards move')
    const progress = await itemProgress(PHASE_NAMES, {mode: progressMode(this.jsonEnabled())})
    // Ctrl-C stops the move at the next safe point (never inside the cutover); the job can be resumed.
    const trap = trapInterrupts(() => undefined)
    try {
      const result = await moveShard(
        env,
        args.shard,
        flags.to,
        {
          onPhase: (phase, text) => progress.update(phase, text),
          onPhaseDone: (phase, ok, text) => progress.done(phase, ok, text),
          signal: trap.signal,
        },
        {prepare: flags.prepare},
      )
      const first = PHASE_NAMES.indexOf(result.phases[0]?.phase as (typeof PHASE_NAMES)[number])
      PHASE_NAMES.forEach((p, i) => {
        if (!result.phases.some((r) => r.phase === p)) progress.done(p, true, i < first ? 'done earlier' : 'not run')
      })
      await progress.finish()
      this.log(moveSummary(result))
      if (!result.ok) this.setExitCode(trap.received ? ExitCode.interrupted : ExitCode.failed)
      return result
    } finally {
      trap.dispose()
      await env.close()
    }
  }
}
