import {Command, Errors, Flags, type Interfaces} from '@oclif/core'

import {loadConfig, type LoadedConfig} from '../config/load.js'
import {formatError, isUserError, UserError, type ExitCodeValue} from '../errors.js'
import {markPhase} from '../start-timing.js'
import {abandonPrefetch, takePrefetchedConfig} from './prefetch.js'

/**
 * Every feedops command extends this. `run()` returns a typed result: with --json oclif prints it
 * as JSON on stdout; otherwise the command renders it for people. Errors go through `catch` below:
 * a UserError is one sentence plus the fix and its exit code; anything else is a bug with a stack.
 */
export abstract class FeedopsCommand<T> extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    config: Flags.string({
      description: 'Path of feedops.yml (default: $FEEDOPS_CONFIG, ./feedops.yml, then the running lab).',
      helpGroup: 'GLOBAL',
    }),
    env: Flags.string({description: 'Environment in the config (default: $FEEDOPS_ENV or defaultEnvironment).', helpGroup: 'GLOBAL'}),
    debug: Flags.boolean({description: 'Show stack traces for errors.', helpGroup: 'GLOBAL'}),
    'profile-start': Flags.boolean({
      description: 'Print on stderr, at exit, where start-up went (bundle, config, inventory, first connect, first byte). Also FEEDOPS_TIMING=1.',
      helpGroup: 'GLOBAL',
    }),
  }

  override async init(): Promise<void> {
    markPhase('command', this.id ?? '')
    await super.init()
  }

  override async finally(err: Error | undefined): Promise<unknown> {
    abandonPrefetch()
    return super.finally(err)
  }

  protected loadConfig(flags: {config?: string; env?: string}): LoadedConfig {
    const loc = {...(flags.config !== undefined ? {flag: flags.config} : {}), ...(flags.env !== undefined ? {environment: flags.env} : {})}
    return takePrefetchedConfig(loc) ?? loadConfig(loc)
  }

  /** Sets the exit code the command ends with, without throwing (results are still printed). */
  protected setExitCode(code: ExitCodeValue): void {
    process.exitCode = code
  }

  abstract override run(): Promise<T>

  /**
   * --json output. oclif colourizes it with a tokenizer that overflows the stack on one huge string
   * (a host that printed 10 MB) and is quadratic before that; colours only help a person at a terminal,
   * so anything else, or anything large, is written as plain JSON.
   */
  override logJson(json: unknown): void {
    const text = JSON.stringify(json, null, 2)
    if (process.stdout.isTTY && text.length <= COLOUR_JSON_MAX_CHARS) super.logJson(json)
    else process.stdout.write(`${text}\n`)
  }

  /**
   * Every error from parsing the command line is bad input (exit 2), including a flag's own parse
   * function failing (a non-number for an integer flag, a value out of its range), which oclif
   * throws as a plain Error.
   */
  protected override async parse<F extends ParsedOutput, B extends ParsedOutput, A extends ParsedOutput>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    try {
      return await super.parse(options, argv)
    } catch (err) {
      if (isUserError(err)) {
        // A flag's own parse function threw it (src/cli/numbers.ts): oclif wraps the message in "Parsing --x".
        err.message = err.message.replace(/^Parsing --[\w-]+\s*\n\t/, '').replace(/\s*\n\s*See more help with --help\s*$/, '')
        throw err
      }
      if (isParseError(err) || !(err instanceof Error)) throw err
      const range = integerRangeError(err.message, options?.flags)
      // "Parsing --shard \n\tExpected an integer…\nSee more help with --help" → one sentence.
      const sentence = range ?? err.message.replace(/\s*\n\s*See more help with --help\s*$/, '').replace(/\s*\n\s*/g, ': ').trim()
      throw new UserError(/[.!?]$/.test(sentence) ? sentence : `${sentence}.`, {
        fix: `See \`feedops ${this.id?.replaceAll(':', ' ') ?? ''} --help\`.`,
        cause: err,
      })
    }
  }

  protected override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    if (err instanceof Errors.ExitError) throw err
    // oclif's own parse errors (unknown flag, missing argument…) are bad input too.
    const error = isParseError(err) ? new UserError(parseErrorSentence(err.message), {fix: this.helpHint(), cause: err}) : err
    const report = formatError(error, {debug: this.argv.includes('--debug')})
    process.exitCode = report.exitCode
    if (this.jsonEnabled()) this.logJson({error: report.json})
    else process.stderr.write(report.text)
    return undefined
  }

  private helpHint(): string {
    return `See \`feedops ${this.id?.replaceAll(':', ' ') ?? ''} --help\`.`
  }
}

const COLOUR_JSON_MAX_CHARS = 256 << 10

/**
 * oclif's parse error as one sentence: "The following error occurred:\n  Missing required flag to\nSee more
 * help with --help" → "Missing required flag --to." (the help hint goes in the fix line).
 */
export function parseErrorSentence(message: string): string {
  const text = message
    .replace(/^\s*The following errors? occurred:\s*/i, '')
    .replace(/\s*See more help with --help\s*$/i, '')
    .replace(/\s+/g, ' ')
    .replace(/^Missing required flags? ([\w-]+)/, (_, name: string) => `Missing required flag --${name}`)
    .trim()
  return /[.!?]$/.test(text) ? text : `${text}.`
}

// oclif's FlagOutput/ArgOutput, which it does not export.
type ParsedOutput = {[name: string]: any}

/**
 * oclif's message for an integer flag out of its `Flags.integer({min, max})` range, as one sentence that
 * states the whole range: `--concurrency must be between 1 and 1024; got "0".`
 */
function integerRangeError(message: string, flags: Record<string, unknown> | undefined): string | undefined {
  const m = /^Parsing --([\w-]+)\s+Expected an integer (?:greater|less) than or equal to -?\d+ but received: (.*)$/m.exec(message)
  const flag = m ? (flags?.[m[1]!] as {min?: number; max?: number} | undefined) : undefined
  if (!m || !flag) return undefined
  const want =
    flag.min !== undefined && flag.max !== undefined
      ? `between ${flag.min} and ${flag.max}`
      : flag.min !== undefined
        ? `a whole number of at least ${flag.min}`
        : `a whole number of at most ${flag.max}`
  return `--${m[1]} must be ${want}; got "${m[2]!.trim()}".`
}

/** oclif's parser errors (CLIParseError and subclasses) carry a `parse` property. */
function isParseError(err: unknown): boolean {
  return err instanceof Errors.CLIError && 'parse' in err
}
