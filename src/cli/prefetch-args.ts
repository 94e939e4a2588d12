import type {ConfigLocation} from '../config/load.js'

/**
 * Whether a command line gets the config-and-inventory head start (prefetch.ts), and where its config is.
 * Kept apart, with no imports, so that deciding loads nothing: --version and --help read no config.
 */
const HOST_COMMANDS = new Set(['run', 'play', 'hosts', 'deploy', 'rollback', 'releases', 'audit'])

/**
 * The config location of a command that lists hosts first, when the command line is unambiguous (one
 * --config, one --env, no help); undefined otherwise. FEEDOPS_PREFETCH=0: never.
 */
export function prefetchLocation(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ConfigLocation | undefined {
  if (!HOST_COMMANDS.has(argv[0] ?? '') || env.FEEDOPS_PREFETCH === '0') return undefined
  const end = argv.indexOf('--')
  const args = end === -1 ? argv : argv.slice(0, end)
  if (args.includes('--help') || args.includes('-h')) return undefined
  const flag = flagValue(args, '--config')
  const environment = flagValue(args, '--env')
  if (flag === null || environment === null) return undefined
  return {...(flag !== undefined ? {flag} : {}), ...(environment !== undefined ? {environment} : {})}
}

/** The value of `--name V` or `--name=V`; undefined when absent, null when given more than once or without a value. */
export function flagValue(args: readonly string[], name: string): string | undefined | null {
  const values: string[] = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === name && i + 1 < args.length) values.push(args[++i]!)
    else if (a.startsWith(`${name}=`)) values.push(a.slice(name.length + 1))
    else if (a === name) return null
  }
  return values.length > 1 ? null : values[0]
}
