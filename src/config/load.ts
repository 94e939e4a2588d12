import {existsSync, readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'
import {parseDocument} from 'yaml'
import type {z} from 'zod'

import {UserError} from '../errors.js'
import {configFileSchema, type ConfigFile, type EnvironmentConfig} from './schema.js'

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

/** --config, then $FEEDOPS_CONFIG, then ./feedops.yml, then the running lab's config. */
export function resolveConfigPath(loc: ConfigLocation = {}): string {
  const cwd = loc.cwd ?? process.cwd()
  const envVars = loc.envVars ?? process.env
  const explicit = loc.flag ?? envVars.FEEDOPS_CONFIG
  if (explicit) {
    const file = path.resolve(cwd, expandHome(explicit))
    if (!existsSync(file)) {
      throw new UserError(`Config file ${file} does not exist.`, {fix: 'Check the --config flag or $FEEDOPS_CONFIG.'})
    }
    return file
  }
  const candidates = [path.join(cwd, 'feedops.yml'), path.join(defaultLabDir(cwd, envVars), 'feedops.yml')]
  const found = candidates.find((f) => existsSync(f))
  if (!found) {
    throw new UserError(`No feedops.yml in ${cwd} and no running lab.`, {
      fix: 'Pass --config FILE, set $FEEDOPS_CONFIG, or start the lab with `feedops lab up`.',
    })
  }
  return found
}

export function loadConfig(loc: ConfigLocation = {}): LoadedConfig {
  const file = resolveConfigPath(loc)
  const all = parseConfigText(readFileSync(file, 'utf8'), file)
  const environment = selectEnvironment(all, loc.environment ?? (loc.envVars ?? process.env).FEEDOPS_ENV, file)
  const env = resolvePaths(all.environments[environment]!, path.dirname(file))
  return {file, environment, env, all}
}

/** Parses and validates feedops.yml text; every problem names the file and the key path. */
export function parseConfigText(text: string, file: string): ConfigFile {
  const doc = parseDocument(text, {prettyErrors: false, uniqueKeys: true})
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const where = e.linePos?.[0] ? ` line ${e.linePos[0].line}, column ${e.linePos[0].col}` : ''
    throw new UserError(`${file}:${where} is not valid YAML: ${e.message.split('\n')[0]}`, {
      fix: 'Fix the YAML syntax; nothing was run.',
    })
  }
  const result = configFileSchema.safeParse(doc.toJS() ?? {})
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
    throw new UserError(`Environment "${name}" is not in ${file} (it has ${names.join(', ')}).`, {
      fix: 'Pick one of the environments the file defines.',
    })
  }
  return name
}

export function expandHome(p: string): string {
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
