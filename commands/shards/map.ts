import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {ExitCode} from '../../src/errors.js'
import {shardMapReport, type MapReport} from '../../src/shards/map-report.js'
import {ServerPools} from '../../src/shards/pools.js'
import {assertReachable} from '../../src/shards/reach.js'
import {mapTable} from '../../src/shards/render.js'
import {requireShards} from '../../src/shards/settings.js'

export default class ShardsMap extends FeedopsCommand<MapReport> {
  static override description =
    'Show the logical→physical shard map: per server the logical shards, their states, rows and bytes, and the map version.'

  static override examples = ['<%= config.bin %> shards map', '<%= config.bin %> shards map --exact', '<%= config.bin %> shards map --json']

  static override flags = {
    exact: Flags.boolean({description: 'Count rows exactly (count(*) of every sharded table) instead of the planner estimate.'}),
  }

  async run(): Promise<MapReport> {
    const {flags} = await this.parse(ShardsMap)
    const settings = requireShards(this.loadConfig(flags))
    const pools = new ServerPools(settings, {max: 2, applicationName: 'feedops shards map'})
    try {
      await assertReachable(pools, {catalog: settings.catalog, servers: []})
      const report = await shardMapReport(pools, settings, {exact: flags.exact})
      if (report.logical === 0) {
        this.log('The catalog has no shards yet; run `feedops shards init`.')
      } else {
        this.log(mapTable(report))
        const incomplete = report.mapped < report.logical ? ` (only ${report.mapped} mapped: finish with \`feedops shards init\`)` : ''
        this.log(`map version ${report.version}; ${report.logical} logical shards${incomplete}; rows ${report.exact ? 'exact' : 'estimated'}`)
      }
      if (report.mapped < report.logical || report.servers.some((s) => s.error)) this.setExitCode(ExitCode.failed)
      return report
    } finally {
      await pools.end()
    }
  }
}
