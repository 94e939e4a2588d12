import {writeFileSync} from 'node:fs'

import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {ExitCode} from '../../src/errors.js'
import {mapPicture, shardMapReport, type MapReport} from '../../src/shards/map-report.js'
import {drawPicture, type Picture} from '../../src/shards/picture.js'
import {pictureSvg} from '../../src/shards/picture-svg.js'
import {ServerPools} from '../../src/shards/pools.js'
import {assertReachable} from '../../src/shards/reach.js'
import {mapTable} from '../../src/shards/render.js'
import {requireShards} from '../../src/shards/settings.js'

export default class ShardsMap extends FeedopsCommand<MapReport & {picture: Picture}> {
  static override description =
    'Show the logical→physical shard map: per server the logical shards, their states, rows and bytes, and the map version, with a bar per server for its shards and its bytes.'

  static override examples = ['<%= config.bin %> shards map', '<%= config.bin %> shards map --exact', '<%= config.bin %> shards map --svg map.svg', '<%= config.bin %> shards map --json']

  static override flags = {
    exact: Flags.boolean({description: 'Count rows exactly (count(*) of every sharded table) instead of the planner estimate.'}),
    svg: Flags.string({description: 'Write the picture (a bar per server for shards and bytes) as an SVG to this file.'}),
  }

  async run(): Promise<MapReport & {picture: Picture}> {
    const {flags} = await this.parse(ShardsMap)
    const settings = requireShards(this.loadConfig(flags))
    const pools = new ServerPools(settings, {max: 2, applicationName: 'feedops shards map'})
    try {
      await assertReachable(pools, {catalog: settings.catalog, servers: []})
      const report = await shardMapReport(pools, settings, {exact: flags.exact})
      const picture = mapPicture(report)
      if (flags.svg) writeFileSync(flags.svg, pictureSvg(picture, `feedops shards map (version ${report.version})`))
      if (report.logical === 0) {
        this.log('The catalog has no shards yet; run `feedops shards init`.')
      } else {
        this.log(mapTable(report))
        this.log(`\n${drawPicture(picture, {unicode: Boolean(process.stdout.isTTY)})}\n`)
        const incomplete = report.mapped < report.logical ? ` (only ${report.mapped} mapped: finish with \`feedops shards init\`)` : ''
        this.log(`map version ${report.version}; ${report.logical} logical shards${incomplete}; rows ${report.exact ? 'exact' : 'estimated'}`)
      }
      if (report.mapped < report.logical || report.servers.some((s) => s.error)) this.setExitCode(ExitCode.failed)
      return {...report, picture}
    } finally {
      await pools.end()
    }
  }
}
