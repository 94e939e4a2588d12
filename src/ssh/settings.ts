import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {homedir, userInfo} from 'node:os'
import path from 'node:path'
import ssh2 from 'ssh2'
import SSHConfig from 'ssh-config'

import type {SshSettings} from '../config/schema.js'
import {errorText, UserError} from '../errors.js'
import type {Host} from '../inventory/host.js'

/**
 * Where and as whom to connect to one host. Precedence, field by field:
 * the inventory's host entry > the ssh config file (~/.ssh/config or ssh.sshConfig) > feedops.yml's ssh
 * section > defaults (current user, port 22, ~/.ssh/id_ed25519|id_ecdsa|id_rsa).
 */
export interface ConnectTarget {
  /** Inventory name, used in messages and output. */
  name: string
  /** What the TCP connection (or the bastion's forward) goes to. */
  address: string
  port: number
  user: string
  /** Candidate private keys in order; the first that exists is used. */
  identityFiles: string[]
  jump?: JumpTarget
}

export interface JumpTarget {
  /** The bastion as written ([user@]host[:port]), for messages and as the pool key. */
  spec: string
  address: string
  port: number
  user: string
  identityFiles: string[]
}

export interface JumpSpec {
  user?: string
  host: string
  port?: number
}

type SshConfigFile = InstanceType<typeof SSHConfig>

/** `[user@]host[:port]` (also `[user@][v6addr]:port`). One hop only. */
export function parseJumpSpec(spec: string): JumpSpec {
  const s = spec.trim()
  if (s.includes(',')) {
    throw new UserError(`Jump host "${spec}" chains several bastions; feedops supports one.`, {
      fix: 'Use a single [user@]host[:port] for ssh.jumpHost or ProxyJump.',
    })
  }
  const m = /^(?:ssh:\/\/)?(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s/]+)(?::(\d{1,5}))?\/?$/.exec(s)
  if (!m) {
    throw new UserError(`Jump host "${spec}" is not [user@]host[:port].`, {fix: 'Fix ssh.jumpHost (or ProxyJump in the ssh config).'})
  }
  const out: JumpSpec = {host: m[2]!.replace(/^\[|\]$/g, '')}
  if (m[1]) out.user = m[1]
  if (m[3]) {
    const port = Number(m[3])
    if (port < 1 || port > 65535) throw new UserError(`Jump host "${spec}" has port ${port} out of range.`, {fix: 'Use a port 1..65535.'})
    out.port = port
  }
  return out
}

/** Reads the ssh config file the settings name: ~/.ssh/config when true (missing is fine), a path (must exist), or none. */
export async function loadSshConfigFile(ssh: Pick<SshSettings, 'sshConfig'>): Promise<SshConfigFile | undefined> {
  if (ssh.sshConfig === false) return undefined
  const file = ssh.sshConfig === true ? path.join(homedir(), '.ssh', 'config') : ssh.sshConfig
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if (ssh.sshConfig === true && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UserError(`Cannot read the ssh config ${file}: ${(err as Error).message}.`, {
      fix: 'Fix ssh.sshConfig in feedops.yml (or set it to false).',
    })
  }
  return parseSshConfigText(text, file)
}

export function parseSshConfigText(text: string, file = 'ssh config'): SshConfigFile {
  try {
    return SSHConfig.parse(text)
  } catch (err) {
    throw new UserError(`${file} is not a valid ssh config: ${(err as Error).message}.`, {fix: 'Fix the ssh config file.'})
  }
}

type Computed = Record<string, string | string[]>

/** The ssh config's answer for a host; `Match exec` is never run. */
function lookup(config: SshConfigFile | undefined, ...names: string[]): Computed {
  if (!config) return {}
  const out: Computed = {}
  // OpenSSH semantics: the first value obtained wins; the address typed first, then the inventory name.
  for (const name of [...new Set(names)]) {
    const found = config.compute(name, {ignoreCase: true, matchExec: false}) as Computed
    for (const [k, v] of Object.entries(found)) {
      const key = k.toLowerCase()
      if (key === 'host' || key in out) continue
      out[key] = v
    }
  }
  return out
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

function expandTokens(value: string, host: string, user: string): string {
  return value.replace(/%([%hdu])/g, (_, t: string) =>
    t === '%' ? '%' : t === 'h' ? host : t === 'd' ? homedir() : user,
  )
}

function expandPath(p: string, host: string, user: string): string {
  const v = expandTokens(p, host, user)
  return v === '~' || v.startsWith('~/') ? path.join(homedir(), v.slice(1)) : v
}

function portOf(v: string | string[] | undefined, where: string): number | undefined {
  const s = first(v)
  if (s === undefined) return undefined
  const n = Number(s)
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UserError(`Port "${s}" for ${where} in the ssh config is invalid.`, {fix: 'Fix the Port line.'})
  return n
}

const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa']

let currentUser: string | undefined

function localUser(): string {
  if (currentUser === undefined) {
    try {
      currentUser = userInfo().username
    } catch {
      currentUser = process.env.USER ?? 'root'
    }
  }
  return currentUser
}

function identityChain(found: Computed, ssh: SshSettings, host: string): string[] {
  const fromConfig = found.identityfile
  if (fromConfig) return (Array.isArray(fromConfig) ? fromConfig : [fromConfig]).map((p) => expandPath(p, host, localUser()))
  if (ssh.identityFile) return [ssh.identityFile]
  return DEFAULT_KEYS.map((k) => path.join(homedir(), '.ssh', k))
}

export function resolveTarget(host: Host, ssh: SshSettings, config?: SshConfigFile): ConnectTarget {
  const found = lookup(config, host.address, host.name)
  const hostName = first(found.hostname)
  const address = hostName ? expandTokens(hostName, host.address, localUser()) : host.address
  const target: ConnectTarget = {
    name: host.name,
    address,
    port: host.port ?? portOf(found.port, host.name) ?? ssh.port ?? 22,
    user: host.user ?? first(found.user) ?? ssh.user ?? localUser(),
    identityFiles: identityChain(found, ssh, address),
  }
  const proxyJump = first(found.proxyjump)
  const jumpSpec = proxyJump !== undefined ? (proxyJump.toLowerCase() === 'none' ? undefined : proxyJump) : ssh.jumpHost
  if (jumpSpec) target.jump = resolveJump(jumpSpec, ssh, config)
  return target
}

/** The bastion gets the same treatment as a host (ssh config for it applies), except that it never jumps itself. */
export function resolveJump(spec: string, ssh: SshSettings, config?: SshConfigFile): JumpTarget {
  const parsed = parseJumpSpec(spec)
  const found = lookup(config, parsed.host)
  const hostName = first(found.hostname)
  const address = hostName ? expandTokens(hostName, parsed.host, localUser()) : parsed.host
  return {
    spec,
    address,
    port: parsed.port ?? portOf(found.port, parsed.host) ?? ssh.port ?? 22,
    user: parsed.user ?? first(found.user) ?? ssh.user ?? localUser(),
    identityFiles: identityChain(found, ssh, address),
  }
}

/**
 * Checks once, before any host is contacted, that ssh.identityFile is a private key ssh can use; a missing,
 * unreadable, encrypted or garbage file would otherwise fail on every host as "refused". Returns the key's text.
 */
export async function checkIdentityFile(file: string): Promise<string> {
  const fix = 'Point ssh.identityFile in feedops.yml at an unencrypted private key (or use ssh.agent).'
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const what = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory, not a private key' : `cannot be read (${code ?? errorText(err)})`
    throw new UserError(`The identity file (ssh.identityFile) ${file} ${what}.`, {fix, cause: err})
  }
  const key = ssh2.utils.parseKey(text)
  if (key instanceof Error) {
    const encrypted = /passphrase/i.test(key.message)
    const why = encrypted ? 'is encrypted with a passphrase, which feedops cannot ask for' : `is not a private key (${key.message})`
    throw new UserError(`The identity file (ssh.identityFile) ${file} ${why}.`, {
      fix: encrypted ? 'Add the key to ssh-agent and set ssh.agent: true instead of ssh.identityFile.' : fix,
    })
  }
  if (!(Array.isArray(key) ? key : [key]).every((k) => k.isPrivateKey())) {
    throw new UserError(`The identity file (ssh.identityFile) ${file} is a public key.`, {fix: 'Point ssh.identityFile at the private key (without .pub).'})
  }
  return text
}

/** The first candidate key file that exists, or undefined. */
export function pickIdentity(files: readonly string[]): string | undefined {
  return files.find((f) => existsSync(f))
}
