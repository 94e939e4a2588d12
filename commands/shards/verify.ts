import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import {parseShardNumber, shardArg} from '../../src/cli/numbers.js'
import {ExitCode, UserError} from '../../src/errors.js'
import {checkShards, type ShardCheck} from '../../src/shards/move/check.js'
import {openMoveEnv} from '../../src/shards/move/open.js'
import {checksTable} from '../../src/shards/move/render.js'

export default class ShardsVerify extends FeedopsCommand<{ok: boolean; shards: ShardCheck[]}> {
  static override description = `Check that the shard map agrees with what each server holds: every logical shard has exactly one writable copy, on the server the map names; any other copy belongs to the shard's live move. For a shard being moved, also compare its two copies (row count and hash of every table, at one consistent point).`

  static override examples = ['<%= config.bin %> shards verify 12', '<%= config.bin %> shards verify 3 12 40', '<%= config.bin %> shards verify --all --json']

  static override strict = false
  static override args = {shard: shardArg({description: 'Logical shard number(s).'})}

  static override flags = {all: Flags.boolean({description: 'Every shard in the map.'})}

  async run(): Promise<{ok: boolean; shards: ShardCheck[]}> {
    const {argv, flags} = await this.parse(ShardsVerify)
    // The first is parsed by its arg; the rest (strict = false) arrive as text.
    const shards = (argv as (number | string)[]).map((s) => (typeof s === 'number' ? s : parseShardNumber(s)))
    if (shards.length === 0 && !flags.all) throw new UserError('Name the shards to verify, or pass --all.', {fix: 'Run `feedops shards verify --all`.'})
    const env = await openMoveEnv(this.loadConfig(flags), 'feedops shards verify')
    try {
      const checks = await checkShards(env, flags.all ? 'all' : shards)
      const bad = checks.filter((c) => c.problems.length > 0)
      // With --all, only the shards worth a look: problems, moves, extra copies.
      const shown = flags.all ? checks.filter((c) => c.problems.length > 0 || c.copies.length !== 1 || c.job !== undefined) : checks
      if (shown.length > 0) this.log(checksTable(shown))
      this.log(bad.length === 0 ? `${checks.length} shard${checks.length === 1 ? '' : 's'}: map and servers agree.` : `${bad.length} of ${checks.length} shards have problems.`)
      if (bad.length > 0) this.setExitCode(ExitCode.failed)
      return {ok: bad.length === 0, shards: checks}
    } finally {
      await env.close()
    }
  }
}
