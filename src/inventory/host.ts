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
    if (picked.length === 0) {
      const roles = [...new Set(all.flatMap((h) => h.roles))].sort()
      throw new UserError(`No host has role "${sel.role}".`, {fix: `Use one of: ${roles.join(', ') || '(no roles defined)'}.`})
    }
  }
  if (sel.hosts && sel.hosts.length > 0) {
    const byKey = new Map<string, Host>()
    for (const h of picked) {
      byKey.set(h.name, h)
      if (!byKey.has(h.address)) byKey.set(h.address, h)
    }
    const unknown = sel.hosts.filter((n) => !byKey.has(n))
    if (unknown.length > 0) {
      throw new UserError(`Unknown host${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}.`, {
        fix: 'Run `feedops hosts` to see the names' + (sel.role ? ` with role ${sel.role}.` : '.'),
      })
    }
    picked = [...new Set(sel.hosts.map((n) => byKey.get(n)!))]
  }
  return picked
}
