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
  override readonly name = 'UserError'
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

/** Short text of an unknown thrown value, for per-host/per-shard result rows. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}
