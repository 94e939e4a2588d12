import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {interruptedWord, trapInterrupts} from '../../src/cli/interrupts.js'
import {itemProgress, progressMode, type ItemProgress} from '../../src/cli/progress.js'
import {ExitCode, UserError} from '../../src/errors.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {planFlagDefs, planFlagInput, planFlagsGiven} from '../../src/shards/rebalance/flags.js'
import {planFlags} from '../../src/shards/rebalance/input.js'
import {readPlanFile} from '../../src/shards/rebalance/plan-file.js'
import {rebalanceSummary, statusText} from '../../src/shards/rebalance/render.js'
import {runRebalance, type RebalanceResult} from '../../src/shards/rebalance/run.js'
import {abandonRebalance, rebalanceStatus, stopRebalance, type RebalanceStatusReport} from '../../src/shards/rebalance/status.js'
import {requireShards} from '../../src/shards/settings.js'

type Result = RebalanceResult | RebalanceStatusReport | {stopped: number; running: boolean} | {abandoned: number; left: number}

export default class ShardsRebalance extends FeedopsCommand<Result> {
  static override description = `Run a rebalance: the moves of a plan file, or of a fresh plan made with the plan flags (see \`shards plan\`).

Each move is an ordinary \`shards move\` job in the catalog. By default at most one move per source server and one per target server run at a time; --concurrency bounds the moves in flight across the fleet. A move that fails stops its server pair, the others go on; the summary gives each shard's outcome (exit 1). Ctrl-C lets the moves in flight reach a safe point, starts no new one and prints what was done (exit 130); running \`rebalance\` again continues the same plan, and nothing moves twice. --stop, from any terminal or machine, lets the moves in flight finish and starts no new one. --status shows what the running or last rebalance has done and has left. Without --complete the old copies stay, kept in sync, until \`shards complete\`.`

  static override examples = [
    '<%= config.bin %> shards rebalance',
    '<%= config.bin %> shards rebalance --drain pg2 --complete',
    '<%= config.bin %> shards rebalance --plan drain-pg2.json --concurrency 2',
    '<%= config.bin %> shards rebalance --status',
    '<%= config.bin %> shards rebalance --stop',
  ]

  static override flags = {
    ...planFlagDefs,
    plan: Flags.string({description: 'Run the plan in this file (from `shards plan --out FILE`).', exclusive: ['strategy', 'drain', 'max-moves', 'threshold']}),
    concurrency: Flags.integer({description: 'At most this many moves in flight across the fleet (default: one per server pair).', min: 1}),
    'per-server': Flags.integer({description: 'Moves in flight per source server and per target server.', min: 1, default: 1}),
    complete: Flags.boolean({description: 'Complete each move once it is verified and switched (drops the old copy).'}),
    status: Flags.boolean({description: 'Show what the running (or last) rebalance has done and has left; changes nothing.', exclusive: ['stop', 'abandon']}),
    stop: Flags.boolean({description: 'Ask the running rebalance to let its moves in flight finish and start no new one.', exclusive: ['status', 'abandon']}),
    abandon: Flags.boolean({description: 'Close an unfinished rebalance that nobody runs; its moves not yet made stay unmade.', exclusive: ['status', 'stop']}),
  }

  async run(): Promise<Result> {
    const {flags} = await this.parse(ShardsRebalance)
    const loaded = this.loadConfig(flags)
    const settings = requireShards(loaded)
    const request = flags.status || flags.stop || flags.abandon ? undefined : {
      ...(flags.plan ? {plan: readPlanFile(flags.plan)} : {}),
      flags: planFlags(planFlagInput(flags), settings),
      flagsGiven: planFlagsGiven(flags),
      options: {concurrency: flags.concurrency ?? null, perServer: flags['per-server'], complete: flags.complete},
    }
    const perServer = flags['per-server']
    const env = await openMoveEnv(loaded, 'feedops shards rebalance', {poolMax: Math.min(40, 8 * 2 * perServer + 4)})
    try {
      if (flags.status) {
        const status = await rebalanceStatus(env.pools.catalog)
        this.log(statusText(status))
        return status
      }
      if (flags.stop || flags.abandon) {
        const c = await env.pools.catalog.connect()
        try {
          if (flags.abandon) {
            const r = await abandonRebalance(c)
            this.log(`Rebalance ${r.id} abandoned; ${r.left} of its moves were not made.`)
            return {abandoned: r.id, left: r.left}
          }
          const r = await stopRebalance(c)
          this.log(r.running ? `Asked rebalance ${r.id} to stop: its moves in flight finish, no new one starts.` : `Rebalance ${r.id} is not running; it stays stopped.`)
          return {stopped: r.id, running: r.running}
        } finally {
          c.release()
        }
      }
      return await this.rebalance(env, settings, request!)
    } finally {
      await env.close()
    }
  }

  private async rebalance(env: Awaited<ReturnType<typeof openMoveEnv>>, settings: ReturnType<typeof requireShards>, request: Parameters<typeof runRebalance>[2]): Promise<RebalanceResult> {
    const mode = progressMode(this.jsonEnabled())
    let progress: ItemProgress | undefined
    const item = (shard: number) => `shard ${shard}`
    const trap = trapInterrupts((sig) => process.stderr.write(`${interruptedWord(sig)}: the moves in flight stop at a safe point; no new move starts.\n`))
    try {
      const result = await runRebalance(env, settings, request, {
        signal: trap.signal,
        onPlan: async (plan, continued, done) => {
          if (continued && mode !== 'off') process.stderr.write(`Continuing the unfinished rebalance (${plan.moves.length} moves, planned from map version ${plan.mapVersion}).\n`)
          progress = await itemProgress(plan.moves.map((m) => item(m.shard)), {mode})
          for (const m of plan.moves) {
            progress.update(item(m.shard), `${m.from} → ${m.to}: waiting`)
            if (done.includes(m.shard)) progress.done(item(m.shard), true, `${m.from} → ${m.to}: done earlier`)
          }
        },
        onMove: (shard, text) => progress?.update(item(shard), text),
        onMoveDone: (shard, ok, text) => progress?.done(item(shard), ok, text),
      })
      for (const m of result.moves) if (m.outcome === 'pending' || m.outcome === 'skipped') progress?.done(item(m.shard), false, m.outcome === 'pending' ? 'not started' : 'skipped: its server pair failed')
      await progress?.finish()
      this.log(rebalanceSummary(result))
      if (result.interrupted) this.setExitCode(ExitCode.interrupted)
      else if (!result.ok && !result.stopped) this.setExitCode(ExitCode.failed)
      return result
    } catch (err) {
      await progress?.finish('failed')
      if (trap.received && !(err instanceof UserError)) this.setExitCode(ExitCode.interrupted)
      throw err
    } finally {
      trap.dispose()
    }
  }
}
