import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../../src/cli/base-command.js'
import type {WatchResult} from '../../src/lb/watch.js'

export default class LbWatch extends FeedopsCommand<WatchResult> {
  static override description = `Run \`lb rotate\`'s pass in a loop, for a supervisor (systemd) instead of cron.

A pass every --interval seconds, each exactly one \`lb rotate\` (same guards, same lock, same kept counts),
printing its action lines and summary line (with --json, one JSON object per pass, one a line). A pass that
cannot run (another holds the lock, the API is down or throttling) is reported and the next one tries
again; bad config ends the watch (exit 2). SIGTERM or Ctrl-C lets the action under way finish, starts no
other and exits 130; a second one ends the process at once.`

  static override examples = [
    '<%= config.bin %> lb watch',
    '<%= config.bin %> lb watch --interval 5',
    '<%= config.bin %> lb watch --interval 1 --json',
  ]

  static override flags = {
    interval: Flags.integer({min: 1, max: 3600, default: 10, description: 'Seconds from the start of one pass to the start of the next.'}),
    passes: Flags.integer({min: 1, description: 'Stop after this many passes (default: until interrupted).', hidden: true}),
  }

  async run(): Promise<WatchResult> {
    const {flags} = await this.parse(LbWatch)
    const loaded = this.loadConfig(flags)
    const json = this.jsonEnabled()
    const {withLb} = await import('../../src/lb/cli.js')
    const {watch} = await import('../../src/lb/watch.js')
    const {actionLine, renderPass} = await import('../../src/lb/render.js')
    const stamp = () => new Date().toISOString()
    const result = await withLb(loaded, json, 'lb watch', ({ctx, signal, progress}) =>
      watch(ctx, {
        intervalS: flags.interval,
        signal,
        ...(flags.passes ? {maxPasses: flags.passes} : {}),
        onProgress: progress,
        ...(json ? {} : {onAction: (a) => void process.stdout.write(`${stamp()} ${actionLine(a, false)}\n`)}),
        onPass: (r) => {
          if (json) process.stdout.write(`${JSON.stringify(r)}\n`)
          else process.stdout.write(`${stamp()} ${renderPass(r, {actionsPrinted: true}).trimEnd().split('\n').join(`\n${stamp()} `)}\n`)
        },
        onError: (message, exitCode) => {
          if (json) process.stdout.write(`${JSON.stringify({error: {message, exitCode}})}\n`)
          else process.stderr.write(`${stamp()} pass skipped: ${message}\n`)
        },
      }),
    )
    if (result.interrupted) this.setExitCode(130)
    return result
  }
}
