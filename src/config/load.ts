import {closeSync, fstatSync, lstatSync, openSync, readSync, statSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'
import {LineCounter, parseDocument} from 'yaml'
import type {z} from 'zod'

import {markPhase} from '../start-timing.js'
import {errorText, UserError} from '../errors.js'
import {configFileSchemaFor, type ConfigFile, type EnvironmentConfig} from './schema.js'

export interface LoadedConfig {
  /** Absolute path of the file read. */
  file: string
  /** Name of the selected environment. */
  environment: string
  env: EnvironmentConfig
  all: ConfigFile
}

export interface ConfigLocation {
  /** --config */
  flag?: string
  /** --env */
  environment?: string
  cwd?: string
  envVars?: NodeJS.ProcessEnv
}

/** Where the lab keeps its state and writes its config, unless told otherwise. */
export function defaultLabDir(cwd = process.cwd(), envVars: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(cwd, envVars.FEEDOPS_LAB_DIR ?? '.lab')
}

/**
 * The lab dir for `lab status` and `lab down`: --dir, else the lab.dir that `lab up` wrote into the config named
 * by --config or $FEEDOPS_CONFIG, else the default lab dir.
 */
export function resolveLabDir(opts: {dir?: string; config?: ConfigLocation}): string {
  const loc = opts.config ?? {}
  const envVars = loc.envVars ?? process.env
  if (opts.dir !== undefined) return path.resolve(loc.cwd ?? process.cwd(), opts.dir)
  if (loc.flag === undefined && !envVars.FEEDOPS_CONFIG) return defaultLabDir(loc.cwd, envVars)
  const loaded = loadConfig(loc)
  const dir = loaded.env.lab?.dir
  if (!dir) {
    throw new UserError(`${loaded.file}: environments.${loaded.environment}.lab is missing, so the config names no lab dir.`, {
      fix: 'Pass --dir, or point --config at the feedops.yml that `feedops lab up` wrote.',
    })
  }
  return path.resolve(path.dirname(loaded.file), dir)
}

/** Larger than any real feedops.yml by far; a bigger file is refused by its size, before it is read or parsed. */
export const MAX_CONFIG_BYTES = 1 << 20

/** --config, then $FEEDOPS_CONFIG, then ./feedops.yml, then the running lab's config. */
export function resolveConfigPath(loc: ConfigLocation = {}): string {
  const cwd = loc.cwd ?? process.cwd()
  const envVars = loc.envVars ?? process.env
  if (loc.flag !== undefined && loc.flag.trim() === '') {
    // `--config "$UNSET"`: taking it as "not given" would read another file than the one meant.
    throw new UserError('--config is empty.', {fix: 'Name a feedops.yml file, or leave --config out to use $FEEDOPS_CONFIG, ./feedops.yml or the running lab.'})
  }
  const explicit = loc.flag ?? envVars.FEEDOPS_CONFIG
  if (explicit) {
    const file = path.resolve(cwd, expandHome(explicit))
    const from = loc.flag !== undefined ? '--config' : '$FEEDOPS_CONFIG'
    const problem = notAFile(file)
    if (problem) throw new UserError(`Config file ${file} (from ${from}) ${problem}.`, {fix: 'Point --config or $FEEDOPS_CONFIG at a feedops.yml file.'})
    return file
  }
  const candidates = [path.join(cwd, 'feedops.yml'), path.join(defaultLabDir(cwd, envVars), 'feedops.yml')]
  const found = candidates.find(isFile)
  if (!found) {
    throw new UserError(`No feedops.yml in ${cwd} and no running lab.`, {
      fix: 'Pass --config FILE, set $FEEDOPS_CONFIG, or start the lab with `feedops lab up`.',
    })
  }
  return found
}

/** What the path is when it is not a regular file (followed through symlinks), in words; undefined for a file. */
export function notAFile(file: string): string | undefined {
  let st
  try {
    st = statSync(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ELOOP') return 'is a symbolic link that loops (it never reaches a file)'
    if (code === 'EACCES') return 'cannot be reached (permission denied on a folder above it)'
    if (code === 'ENOTDIR') return 'does not exist (a part of its path is a file, not a folder)'
    let link = false
    try {
      link = lstatSync(file).isSymbolicLink()
    } catch {}
    return link ? 'is a symbolic link to nothing (its target does not exist)' : 'does not exist'
  }
  if (st.isFile()) return undefined
  if (st.isDirectory()) return 'is a directory, not a file'
  if (st.isFIFO()) return 'is a named pipe (FIFO), not a file'
  if (st.isCharacterDevice()) return 'is a character device (such as /dev/null), not a file'
  if (st.isBlockDevice()) return 'is a block device, not a file'
  if (st.isSocket()) return 'is a socket, not a file'
  return 'is not a regular file'
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile()
  } catch {
    return false
  }
}

export function loadConfig(loc: ConfigLocation = {}): LoadedConfig {
  const file = resolveConfigPath(loc)
  const loaded = configFromText(readConfigFile(file), file, loc.environment ?? (loc.envVars ?? process.env).FEEDOPS_ENV)
  markPhase('config')
  return loaded
}

/** What loadConfig does once it has the text: parse, validate, pick the environment, resolve paths. */
export function configFromText(text: string, file: string, environment?: string): LoadedConfig {
  const all = parseConfigText(text, file)
  const name = selectEnvironment(all, environment, file)
  const env = resolvePaths(all.environments[name]!, path.dirname(file))
  return {file, environment: name, env, all}
}

/**
 * The file's text, refused by its size first: a huge file would cost seconds and hundreds of MB in the YAML
 * parser before any check ran. The size is taken from the opened file, so it is the file that is read.
 */
function readConfigFile(file: string): string {
  let fd: number
  try {
    fd = openSync(file, 'r')
  } catch (err) {
    throw cannotRead(file, err)
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw new UserError(`Config file ${file} ${notAFile(file) ?? 'is not a regular file'}.`, {fix: 'Point --config or $FEEDOPS_CONFIG at a feedops.yml file.'})
    if (st.size > MAX_CONFIG_BYTES) {
      throw new UserError(`Config file ${file} is ${(st.size / (1 << 20)).toFixed(1)} MiB, over the ${MAX_CONFIG_BYTES >> 20} MiB a feedops.yml may have; it was not read.`, {
        fix: 'Point --config at the right file (a feedops.yml is a few KiB).',
      })
    }
    const buf = Buffer.alloc(st.size + 1)
    let n = 0
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null)
    // It grew while being read: refuse rather than parse a half-written file.
    if (n > st.size) throw new UserError(`Config file ${file} changed while it was read.`, {fix: 'Run the command again once the file is written.'})
    return buf.subarray(0, n).toString('utf8')
  } catch (err) {
    if (err instanceof UserError) throw err
    throw cannotRead(file, err)
  } finally {
    closeSync(fd)
  }
}

function cannotRead(file: string, err: unknown): UserError {
  return new UserError(`Config file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? errorText(err)}).`, {
    fix: 'Check the file and its permissions.',
    cause: err,
  })
}

/**
 * Parses and validates feedops.yml text; every problem names the file and the key path (or the line and
 * column for YAML syntax). Parser warnings (an unknown tag such as `!include`) are errors too: the value
 * would otherwise be taken as a plain string.
 */
export function parseConfigText(text: string, file: string): ConfigFile {
  const asJson = text.trimStart().startsWith('{') ? jsonOrUndefined(text) : undefined
  if (asJson !== undefined) return validConfig(asJson, file)
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, {prettyErrors: false, uniqueKeys: true, lineCounter})
  const problem = doc.errors[0] ?? doc.warnings[0]
  if (problem) {
    const {line, col} = lineCounter.linePos(problem.pos[0])
    throw new UserError(`${file} is not valid YAML at line ${line}, column ${col}: ${problem.message.split('\n')[0]!.replace(/\.$/, '')}.`, {
      fix: problem.code === 'TAG_RESOLVE_FAILED' ? 'Remove the tag: feedops.yml takes plain YAML values; nothing was run.' : 'Fix the YAML there; nothing was run.',
    })
  }
  let raw: unknown
  try {
    raw = doc.toJS()
  } catch (err) {
    // toJS refuses an alias bomb ("Excessive alias count…") rather than expand it.
    throw new UserError(`${file} is not valid YAML: ${errorText(err)}.`, {fix: 'Use fewer aliases (*name); nothing was run.', cause: err})
  }
  return validConfig(raw, file)
}

/**
 * JSON is YAML too, and JSON.parse costs a fraction of the YAML parser's first run: what a deploy writes for
 * the app (shared/feedops.yml) is JSON, read this way on every start. Text that is not JSON takes the YAML path.
 */
function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

function validConfig(raw: unknown, file: string): ConfigFile {
  const result = configFileSchemaFor(raw ?? {}).safeParse(raw ?? {})
  if (!result.success) {
    throw new UserError(`${file} is invalid: ${formatIssues(result.error.issues)}`, {
      fix: 'Fix the keys named above; nothing was run.',
    })
  }
  return result.data
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(top level)'}: ${describeIssue(i)}`)
    .join('; ')
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`
  if (issue.code === 'invalid_union' && 'note' in issue && issue.note === 'No matching discriminator') {
    return 'expected source to be one of static, ec2'
  }
  return issue.message.replace(/^Invalid input: /, '')
}

function selectEnvironment(all: ConfigFile, wanted: string | undefined, file: string): string {
  const names = Object.keys(all.environments)
  const name = wanted ?? all.defaultEnvironment ?? (names.length === 1 ? names[0] : undefined)
  if (!name) {
    throw new UserError(`${file} has several environments (${names.join(', ')}) and none was chosen.`, {
      fix: 'Pass --env NAME, set $FEEDOPS_ENV, or set defaultEnvironment in the file.',
    })
  }
  if (!all.environments[name]) {
    const message =
      wanted === undefined
        ? `${file}: defaultEnvironment is "${name}", which is not under environments (it has ${names.join(', ')}).`
        : `Environment "${name}" is not in ${file} (it has ${names.join(', ')}).`
    throw new UserError(message, {
      fix: 'Pick one of the environments the file defines.',
    })
  }
  return name
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(homedir(), p.slice(1)) : p
}

/** File paths in the config are relative to the config file. */
function resolvePaths(env: EnvironmentConfig, base: string): EnvironmentConfig {
  const abs = (p: string) => path.resolve(base, expandHome(p))
  const ssh = {...env.ssh, knownHosts: abs(env.ssh.knownHosts)}
  if (ssh.identityFile) ssh.identityFile = abs(ssh.identityFile)
  if (typeof ssh.sshConfig === 'string') ssh.sshConfig = abs(ssh.sshConfig)
  return {...env, ssh}
}
