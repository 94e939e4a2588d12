import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import type {PassResult} from '../../src/lb/pass.js'

export default class LbRotate extends FeedopsCommand<PassResult> {
  static override description = `One rotation pass, for cron: deregister failing NGINX nodes, register recovered ones.

Probes every node (lb.probe.path, /nginx-health) and reads the load balancer at once, then: a registered
node with lb.failsOut (K, 3) consecutive failed probes is deregistered, a node out with lb.passesIn (J, 2)
consecutive passes is registered again. Guards: never fewer than lb.minInService registered; at most
lb.maxRemovePerRun out per pass; when every node fails nothing changes (the probe or the network is the
likelier culprit) and the pass says so loudly; a node drained by hand (\`lb drain\`) is left alone; targets
the inventory does not know are reported, never touched. A deregistration waits out the load balancer's
connection draining (at most lb.drainTimeoutS). The counts survive between passes (lb.state: file or
redis), and a lock keeps two overlapping passes from both acting.

Prints one line per action and one summary line. Exit 0: the fleet is as wanted; 1: a node is out, kept in
by a guard, or an action failed; 2: bad config (no API call made); 3: another pass holds the lock;
130: interrupted.`

  static override examples = [
    '<%= config.bin %> lb rotate',
    '<%= config.bin %> lb rotate --dry-run',
    '<%= config.bin %> lb rotate --json',
    '* * * * * cd /srv/ops && feedops lb rotate --env prod >> /var/log/feedops-lb.log 2>&1',
  ]

  static override flags = {
    'dry-run': Flags.boolean({description: 'Probe and decide, print what would be done; change nothing, keep no count, take no lock.'}),
  }

  async run(): Promise<PassResult> {
    const {flags} = await this.parse(LbRotate)
    const loaded = this.loadConfig(flags)
    const json = this.jsonEnabled()
    const {withLb} = await import('../../src/lb/cli.js')
    const {runPass} = await import('../../src/lb/pass.js')
    const {actionLine, renderPass} = await import('../../src/lb/render.js')
    const dryRun = flags['dry-run']
    const result = await withLb(loaded, json, 'lb rotate', ({ctx, signal, progress}) =>
      runPass(ctx, {
        dryRun,
        what: 'rotate',
        signal,
        onProgress: progress,
        // Each action as it completes, so an interrupted pass still shows what it did.
        ...(json ? {} : {onAction: (a) => void process.stdout.write(`${actionLine(a, dryRun)}\n`)}),
      }),
    )
    if (!json) process.stdout.write(renderPass(result, {actionsPrinted: !dryRun}))
    this.setExitCode(result.exitCode as 0 | 1 | 130)
    return result
  }
}
