import {writeFileSync} from 'node:fs'

import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import type {Picture} from '../../src/shards/picture.js'
import {pictureSvg} from '../../src/shards/picture-svg.js'
import {ServerPools} from '../../src/shards/pools.js'
import {planFlagDefs, planFlagInput} from '../../src/shards/rebalance/flags.js'
import {planFlags} from '../../src/shards/rebalance/input.js'
import {makePlan} from '../../src/shards/rebalance/make.js'
import {writePlanFile} from '../../src/shards/rebalance/plan-file.js'
import type {RebalancePlan} from '../../src/shards/rebalance/plan.js'
import {planPicture, planText} from '../../src/shards/rebalance/render.js'
import {assertReachable} from '../../src/shards/reach.js'
import {requireShards} from '../../src/shards/settings.js'

export default class ShardsPlan extends FeedopsCommand<RebalancePlan & {picture: Picture}> {
  static override description = `Plan a rebalance of the logical shards over the physical servers, and change nothing.

Every server in env.shards.servers takes part (one just added starts empty); shards in env.shards.pinned stay put. The plan says which shard moves from where to where with its rows and bytes, and draws each server's shards and bytes before and after. It is deterministic for a given map and sizes, and records the map version it was made from: \`shards rebalance --plan FILE\` refuses it if the map has changed so that a move no longer holds.`

  static override examples = [
    '<%= config.bin %> shards plan',
    '<%= config.bin %> shards plan --strategy count',
    '<%= config.bin %> shards plan --drain pg2 --out drain-pg2.json',
    '<%= config.bin %> shards plan --threshold 5 --max-moves 10 --svg plan.svg',
  ]

  static override flags = {
    ...planFlagDefs,
    out: Flags.string({description: 'Write the plan to this file (for `shards rebalance --plan FILE`).'}),
    svg: Flags.string({description: 'Write the before/after picture as an SVG to this file.'}),
  }

  async run(): Promise<RebalancePlan & {picture: Picture}> {
    const {flags} = await this.parse(ShardsPlan)
    const settings = requireShards(this.loadConfig(flags))
    const pf = planFlags(planFlagInput(flags), settings)
    const pools = new ServerPools(settings, {max: 2, applicationName: 'feedops shards plan'})
    try {
      await assertReachable(pools, {catalog: settings.catalog, servers: []})
      const {plan} = await makePlan(pools, settings, pf)
      const picture = planPicture(plan)
      if (flags.out) writePlanFile(flags.out, plan)
      if (flags.svg) writeFileSync(flags.svg, pictureSvg(picture, `feedops shards plan (map version ${plan.mapVersion}, strategy ${plan.strategy})`))
      this.log(planText(plan, {unicode: Boolean(process.stdout.isTTY)}))
      if (flags.out) this.log(`Plan written to ${flags.out}; run it with \`feedops shards rebalance --plan ${flags.out}\`.`)
      return {...plan, picture}
    } finally {
      await pools.end()
    }
  }
}
