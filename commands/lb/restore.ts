import {Args, Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import type {RestoreResult} from '../../src/lb/drain.js'

export default class LbRestore extends FeedopsCommand<RestoreResult> {
  static override description = `Put a node drained by hand back into the load balancer.

Lifts the drain and, if the node's deep probe passes now, registers it at once; a node that fails stays out
and \`lb rotate\` registers it after lb.passesIn passes, like any other (exit 1 then). Waits for a pass that
holds the lock at most --lock-wait seconds, then exits 3.`

  static override examples = ['<%= config.bin %> lb restore nginx2', '<%= config.bin %> lb restore nginx2 --json']

  static override args = {node: Args.string({description: 'The node: its inventory name or address.', required: true})}

  static override flags = {
    'lock-wait': Flags.integer({min: 0, max: 3600, default: 30, description: 'Seconds to wait for a pass that holds the lock.'}),
  }

  async run(): Promise<RestoreResult> {
    const {flags, args} = await this.parse(LbRestore)
    const loaded = this.loadConfig(flags)
    const json = this.jsonEnabled()
    const {withLb} = await import('../../src/lb/cli.js')
    const {restoreNode} = await import('../../src/lb/drain.js')
    const {renderRestore} = await import('../../src/lb/render.js')
    const result = await withLb(loaded, json, args.node, ({ctx, signal}) => restoreNode(ctx, args.node, {lockWaitMs: flags['lock-wait'] * 1000, signal}))
    if (!json) process.stdout.write(renderRestore(result))
    if (!result.registered && !result.alreadyRegistered) this.setExitCode(1)
    return result
  }
}
