import {Args, Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import type {DrainResult} from '../../src/lb/drain.js'

export default class LbDrain extends FeedopsCommand<DrainResult> {
  static override description = `Take one NGINX node out of the load balancer by hand, for maintenance.

Marks the node drained by hand (who, when, -m why), deregisters it and waits out the load balancer's
connection draining (at most lb.drainTimeoutS). \`lb rotate\` leaves it out until \`lb restore\`. Refused
(exit 1) when it would leave fewer than lb.minInService nodes registered, unless --force. Waits for a rotate
pass under way (the same lock) at most --lock-wait seconds, then exits 3.`

  static override examples = [
    "<%= config.bin %> lb drain nginx2 -m 'kernel upgrade'",
    '<%= config.bin %> lb drain 127.0.2.2 --json',
    "<%= config.bin %> lb drain nginx1 --force -m 'last node, site down window'",
  ]

  static override args = {node: Args.string({description: 'The node: its inventory name or address.', required: true})}

  static override flags = {
    message: Flags.string({char: 'm', description: 'Why, for `lb status` and the other operators.', default: ''}),
    force: Flags.boolean({description: 'Drain even below lb.minInService (said loudly).'}),
    'lock-wait': Flags.integer({min: 0, max: 3600, default: 30, description: 'Seconds to wait for a pass that holds the lock.'}),
  }

  async run(): Promise<DrainResult> {
    const {flags, args} = await this.parse(LbDrain)
    const loaded = this.loadConfig(flags)
    const json = this.jsonEnabled()
    const {withLb} = await import('../../src/lb/cli.js')
    const {drainNode} = await import('../../src/lb/drain.js')
    const {renderDrain} = await import('../../src/lb/render.js')
    const result = await withLb(loaded, json, args.node, ({ctx, signal, progress}) =>
      drainNode(ctx, args.node, flags.message, {force: flags.force, lockWaitMs: flags['lock-wait'] * 1000, signal, onProgress: progress}),
    )
    if (result.forced) process.stderr.write(`WARNING: --force: ${result.node} drained although fewer than lb.minInService (${loaded.env.lb?.minInService}) nodes stay registered.\n`)
    if (!json) process.stdout.write(renderDrain(result))
    return result
  }
}
