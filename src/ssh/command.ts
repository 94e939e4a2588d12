import {quote} from 'shell-quote'

/**
 * Remote work as data: a command is a shell line the user typed (a string, sent as is), an argv array
 * (every word quoted), or a small step object. `commandLine()` turns any of them into the one line that
 * goes over the wire, so tests can read what would run without SSH.
 */
export type Argv = readonly string[]

export interface CommandOptions {
  /** Run in this directory (`cd DIR || exit 1; …`). */
  cwd?: string
  /** Exported before the command. */
  env?: Readonly<Record<string, string>>
  /** Run through `sudo -n` (as root, or as `user`). */
  sudo?: boolean | {user?: string}
}

export interface RemoteStep extends CommandOptions {
  argv?: Argv
  /** A shell line, sent as written. */
  script?: string
}

export type RemoteCommand = string | Argv | RemoteStep

/** Quotes an argv array for a POSIX shell. */
export function quoteArgv(argv: Argv): string {
  if (argv.length === 0) throw new Error('empty argv')
  return quote([...argv])
}

function isArgv(cmd: RemoteCommand): cmd is Argv {
  return Array.isArray(cmd)
}

export function commandLine(cmd: RemoteCommand, opts: CommandOptions = {}): string {
  let line: string
  let options: CommandOptions = opts
  if (typeof cmd === 'string') line = cmd
  else if (isArgv(cmd)) line = quoteArgv(cmd)
  else {
    const step = cmd as RemoteStep
    if ((step.argv === undefined) === (step.script === undefined)) throw new Error('a step needs exactly one of argv or script')
    line = step.argv ? quoteArgv(step.argv) : step.script!
    options = {...step, ...opts}
  }
  if (line.trim() === '') throw new Error('empty command')
  let prefix = ''
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`invalid environment variable name ${JSON.stringify(k)}`)
    prefix += `export ${k}=${quote([v])}; `
  }
  if (options.cwd) prefix += `cd ${quote([options.cwd])} || exit 1; `
  const inner = prefix + line
  if (!options.sudo) return inner
  const user = typeof options.sudo === 'object' ? options.sudo.user : undefined
  return quote(['sudo', '-n', ...(user ? ['-u', user] : []), '--', 'sh', '-c', inner])
}
