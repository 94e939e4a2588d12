import {spawn} from 'node:child_process'
import {accessSync, constants, existsSync, readdirSync} from 'node:fs'
import path from 'node:path'

import {UserError} from '../errors.js'

/**
 * The lab runs real servers from Debian packages. Each component names the binaries it needs and
 * the package that ships them; a missing one is reported once, for all components, with the
 * apt-get line (or installed with --install).
 */

export interface PackageNeed {
  /** Debian package name, e.g. openssh-server. */
  package: string
  /**
   * The program to look for: an absolute path (may hold one `*` directory level, as in
   * /usr/lib/postgresql/{star}/bin/initdb) or a bare name searched on PATH and the sbin folders.
   */
  binary: string
}

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin']

/** Absolute path of the program, or undefined. A `*` picks the highest version present. */
export function findBinary(binary: string): string | undefined {
  if (path.isAbsolute(binary)) {
    if (!binary.includes('*')) return isExecutable(binary) ? binary : undefined
    const star = binary.indexOf('*')
    const parent = binary.slice(0, star)
    const rest = binary.slice(star + 1)
    if (!existsSync(parent)) return undefined
    const candidates = readdirSync(parent)
      .sort((a, b) => b.localeCompare(a, undefined, {numeric: true}))
      .map((name) => parent + name + rest)
    return candidates.find(isExecutable)
  }
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...SBIN]
  return dirs.map((d) => path.join(d, binary)).find(isExecutable)
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** Packages (deduplicated, in order) whose binary is missing. */
export function missingPackages(needs: PackageNeed[]): string[] {
  const missing = needs.filter((n) => findBinary(n.binary) === undefined).map((n) => n.package)
  return [...new Set(missing)]
}

export function aptInstallLine(packages: string[]): string {
  return `apt-get install -y ${packages.join(' ')}`
}

/** Throws one UserError naming every missing package and the command that installs them. */
export function checkPackages(needs: PackageNeed[]): void {
  const missing = missingPackages(needs)
  if (missing.length === 0) return
  const programs = needs.filter((n) => missing.includes(n.package)).map((n) => path.basename(n.binary))
  throw new UserError(
    `The lab needs the Debian package${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (${[...new Set(programs)].join(', ')} not found).`,
    {fix: `Run \`${aptInstallLine(missing)}\` as root, or pass --install to have \`feedops lab up\` run it.`},
  )
}

/** apt-get update + install of what is missing, then checks again. */
export async function installPackages(needs: PackageNeed[], progress: (msg: string) => void): Promise<string[]> {
  const missing = missingPackages(needs)
  if (missing.length === 0) return []
  if (process.getuid?.() !== 0) {
    throw new UserError(`Installing ${missing.join(', ')} needs root.`, {
      fix: `Run \`sudo ${aptInstallLine(missing)}\`, then \`feedops lab up\` again.`,
    })
  }
  const env = {...process.env, DEBIAN_FRONTEND: 'noninteractive'}
  progress('apt-get update')
  await runApt(['update'], env)
  progress(aptInstallLine(missing))
  await runApt(['install', '-y', '--no-install-recommends', ...missing], env)
  checkPackages(needs)
  return missing
}

function runApt(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('apt-get', args, {env, stdio: ['ignore', 'pipe', 'pipe']})
    let tail = ''
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-2000)
    }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    child.on('error', reject)
    child.on('close', (code) => {
      if (code === 0) resolve()
      else
        reject(
          new UserError(`apt-get ${args[0]} failed (exit ${code}): ${tail.trim().split('\n').slice(-3).join(' | ')}`, {
            fix: 'Fix the package sources or the network, or install the packages by hand.',
          }),
        )
    })
  })
}
