import {interruptedWord, trapInterrupts} from '../cli/interrupts.js'
import {progressMode, withProgress, type ItemProgress} from '../cli/progress.js'
import type {LoadedConfig} from '../config/load.js'
import {openLb, type LbContext} from './context.js'

export interface LbRun {
  ctx: LbContext
  signal: AbortSignal
  /** The one progress line of this command (stderr; TTY, plain lines in logs, nothing with --json). */
  progress: (text: string) => void
}

/**
 * How every lb command that acts runs: open the context (bad config stops here, before any call), trap
 * Ctrl-C/SIGTERM (the first one lets the action under way finish and starts no other; a second ends the
 * process), show progress on one line, close the clients however the work ends.
 */
export async function withLb<T>(loaded: LoadedConfig, json: boolean, item: string, work: (run: LbRun) => Promise<T>): Promise<T> {
  const ctx = await openLb(loaded.env, loaded.environment)
  const trap = trapInterrupts((sig) => {
    if (!json) process.stderr.write(`\n${interruptedWord(sig)}: finishing the action under way, starting no other (again to quit at once)\n`)
  })
  try {
    return await withProgress([item], progressMode(json), async (p: ItemProgress) => {
      const value = await work({ctx, signal: trap.signal, progress: (text) => p.update(item, text)})
      p.done(item, true, 'done')
      return value
    })
  } finally {
    trap.dispose()
    await ctx.close()
  }
}
