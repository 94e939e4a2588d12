import {printable} from './cli/escape.js'

/**
 * One error class for everything the user must fix. Anything else that escapes a command is a bug
 * and is shown with its stack trace.
 *
 * Exit codes: 0 ok, 1 failure on some hosts/shards (or a bug), 2 bad input/config, 3 lock held / nothing done,
 * 130 interrupted (Ctrl-C or SIGTERM; the shell's 128 + SIGINT).
 */
export const ExitCode = {ok: 0, failed: 1, badInput: 2, nothingDone: 3, interrupted: 130} as const
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export class UserError extends Error {
  override readonly name: string = 'UserError'
  /** What to do about it, one sentence. */
  readonly fix: string | undefined
  readonly exitCode: ExitCodeValue

  constructor(message: string, options: {fix?: string; exitCode?: ExitCodeValue; cause?: unknown} = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.fix = options.fix
    this.exitCode = options.exitCode ?? ExitCode.badInput
  }

  toJSON(): {message: string; fix?: string; exitCode: number} {
    return {message: this.message, ...(this.fix ? {fix: this.fix} : {}), exitCode: this.exitCode}
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError
}

/** An error as the user sees it: the exit code, the text for stderr and the object for --json. */
export interface ErrorReport {
  exitCode: number
  /** "Error: sentence\nFix: next step\n" (and the stack with debug), or "Bug: stack…" for anything else. */
  text: string
  json: {message: string; fix?: string; exitCode: number; stack?: string}
}

/**
 * The one formatter for errors that end a command (the CLI's catch, the app's start-up): a UserError is its
 * sentence and its fix, with the stack only when debugging; anything else is a bug, shown with its stack.
 */
export function formatError(err: unknown, opts: {debug?: boolean} = {}): ErrorReport {
  if (isUserError(err)) {
    // Messages quote what was given or found (host names, tags): shown escaped, one line each.
    const stack = opts.debug && err.stack ? `${printable(err.stack, '\n')}\n` : ''
    const fix = err.fix ? `Fix: ${printable(err.fix)}\n` : ''
    return {exitCode: err.exitCode, text: `Error: ${printable(err.message)}\n${fix}${stack}`, json: err.toJSON()}
  }
  const e = err instanceof Error ? err : new Error(String(err))
  return {
    exitCode: ExitCode.failed,
    text: `Bug: ${printable(e.stack ?? e.message, '\n')}\nPlease report this with the command you ran.\n`,
    json: {message: e.message, ...(e.stack ? {stack: e.stack} : {}), exitCode: ExitCode.failed},
  }
}

/** Short text of an unknown thrown value, for per-host/per-shard result rows. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}
