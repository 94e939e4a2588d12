import {isIPv6} from 'node:net'

import {UserError} from '../errors.js'

/**
 * The rule every host name follows, whatever the inventory source (static names in feedops.yml, EC2
 * Name tags): names are printed as line prefixes and table cells and typed in --hosts, so no spaces,
 * newlines or terminal escapes.
 */
export const HOST_NAME_PATTERN = /^[A-Za-z0-9_.:-]+$/
export const HOST_NAME_RULE = 'letters, digits, dot, dash, underscore or colon'

export function isValidHostName(name: string): boolean {
  return HOST_NAME_PATTERN.test(name)
}

/**
 * Why `address` is not a host to connect to, or undefined. The port has a field of its own (port, ssh.port):
 * `10.0.0.1:2222` would be looked up as a host name and fail on every host only once a command runs.
 */
export function addressProblem(address: string): string | undefined {
  if (isIPv6(address)) return undefined
  const bracketed = /^\[([^\]]*)\](?::(\d+))?$/.exec(address)
  if (bracketed) {
    return bracketed[2] !== undefined
      ? `"${address}" has a port in it; write the address as ${bracketed[1]} and the port in the host's port field`
      : `"${address}" is in brackets; write the IPv6 address without them`
  }
  const withPort = /^(.*):(\d*)$/.exec(address)
  if (withPort) return `"${address}" has a port in it; write the address as ${withPort[1]} and the port (${withPort[2] || 'none given'}) in the host's port field`
  if (address.includes(':')) return `"${address}" is neither an IPv6 address nor a host name`
  return undefined
}

/** One machine feedops can reach over SSH, whatever inventory source it came from. */
export interface Host {
  /** Unique, stable name (Name tag, static name, or instance id). */
  name: string
  /** Address to connect to. */
  address: string
  /** SSH port, when it differs from the config's. */
  port?: number
  /** SSH user, when it differs from the config's. */
  user?: string
  roles: string[]
  tags: Record<string, string>
  /** EC2 instance id, when the host came from EC2. */
  instanceId?: string
}

export interface HostSelection {
  role?: string
  /** Host names (or addresses) to keep, in the given order. */
  hosts?: string[]
}

/** Narrows an inventory; an unknown role or host name is bad input (nothing has been touched yet). */
export function selectHosts(all: Host[], sel: HostSelection): Host[] {
  let picked = all
  if (sel.role) {
    picked = picked.filter((h) => h.roles.includes(sel.role!))
    if (picked.length === 0) throw noHostWithRole(all, sel.role)
  }
  if (sel.hosts && sel.hosts.length > 0) {
    const found = sel.hosts.map((n) => ({given: n, host: matchHost(picked, n)}))
    const unknown = found.filter((f) => f.host === undefined).map((f) => f.given)
    if (unknown.length > 0) {
      throw new UserError(`Unknown host${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}.`, {
        fix: 'Run `feedops hosts` to see the names' + (sel.role ? ` with role ${sel.role}.` : '.'),
      })
    }
    picked = [...new Set(found.map((f) => f.host!))]
  }
  return picked
}

/**
 * The host a --hosts entry names: by name or by address. One that is the name of a host and the address of
 * another (a host named 10.0.0.4 beside the host at 10.0.0.4) is ambiguous, and so is an address several
 * hosts share: refused, naming them, rather than guessed.
 */
function matchHost(hosts: readonly Host[], given: string): Host | undefined {
  const byName = hosts.filter((h) => h.name === given)
  const byAddress = hosts.filter((h) => h.address === given && !byName.includes(h))
  const all = [...byName, ...byAddress]
  if (all.length <= 1 || (byName.length === 1 && byAddress.length === 0)) return all[0]
  const described = all.map((h) => (byName.includes(h) ? `${h.name} (by name)` : `${h.name} (by address ${h.address})`))
  throw new UserError(`--hosts ${given} is ambiguous: it matches ${described.join(' and ')}.`, {
    fix: `Name the host you mean by a name that only it has${byName.length === 1 ? ` (${byName[0]!.name} is ${byName[0]!.address === given ? 'also at that address' : `at ${byName[0]!.address}`})` : ''}; see \`feedops hosts\`.`,
  })
}

/** `--role X` or deploy.role X matching no host: names the role, the inventory's size and its roles. */
export function noHostWithRole(all: readonly Host[], role: string, setting = '--role'): UserError {
  const roles = [...new Set(all.flatMap((h) => h.roles))].sort()
  return new UserError(`No host has role "${role}" (from ${setting}); the inventory has ${all.length} host${all.length === 1 ? '' : 's'}, with role${roles.length === 1 ? '' : 's'} ${roles.join(', ') || '(none)'}.`, {
    fix: `Use one of: ${roles.join(', ') || '(no roles defined: give the hosts roles in the inventory)'}.`,
  })
}
