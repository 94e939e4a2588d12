import {Flags} from '@oclif/core'

import {UserError} from '../errors.js'
import {noHostWithRole, type Host, type HostSelection} from '../inventory/host.js'

/** --role, with a description saying what the command selects without it. */
export function roleFlag(description = 'Only hosts with this role.') {
  return Flags.string({char: 'r', description})
}

/** --role and --hosts: which hosts of the inventory a command works on. */
export const selectionFlags = {
  role: roleFlag(),
  hosts: Flags.string({char: 'H', description: 'Only these hosts (names or addresses, comma-separated).'}),
}

/**
 * The flags of every command that works on many hosts over SSH (run, play, deploy, lb …). Spread them
 * into the command's flags and pass the parsed values to `withHostSession` (src/cli/host-session.ts).
 */
export const hostFlags = {
  ...selectionFlags,
  concurrency: Flags.integer({min: 1, max: 1024, description: 'Hosts worked on at once, 1..1024 (default: ssh.concurrency).'}),
  timeout: Flags.integer({min: 0, description: 'Kill a command on a host after S seconds (default: ssh.commandTimeout; 0 = none).'}),
  'connect-timeout': Flags.integer({min: 1, description: 'Give up connecting to a host after S seconds (default: ssh.connectTimeout).'}),
  'accept-new': Flags.boolean({
    description: 'Record the key of a host not yet in known_hosts instead of refusing it (a changed key is always refused).',
  }),
}

export interface SelectionFlagValues {
  role?: string | undefined
  hosts?: string | undefined
}

export interface HostFlagValues extends SelectionFlagValues {
  concurrency?: number | undefined
  timeout?: number | undefined
  'connect-timeout'?: number | undefined
  'accept-new'?: boolean | undefined
}

/**
 * --role/--hosts as a selection. A flag given but blank (`--hosts ''`, `--hosts ,`, `--role ' '`, what
 * `--hosts "$UNSET"` becomes) is bad input: selecting every host instead would run on the whole fleet.
 */
export function hostSelection(flags: SelectionFlagValues): HostSelection {
  const selection: HostSelection = {}
  if (flags.role !== undefined) {
    const role = flags.role.trim()
    if (role === '') throw new UserError('--role is empty.', {fix: 'Name a role (see `feedops hosts`), or leave --role out to use the default hosts.'})
    selection.role = role
  }
  if (flags.hosts !== undefined) {
    const hosts = splitList(flags.hosts)
    if (hosts.length === 0) {
      throw new UserError(`--hosts names no host (got "${flags.hosts}").`, {
        fix: 'Name hosts separated by commas (see `feedops hosts`), or leave --hosts out to use the default hosts.',
      })
    }
    selection.hosts = hosts
  }
  return selection
}

/** Comma-separated names, blanks dropped. */
export function splitList(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
}

/**
 * The hosts a command works on when neither --role nor --hosts is given: those with the role a setting names
 * (deploy.role). None is bad input naming the role and the setting, never "the inventory has no hosts".
 */
export function hostsWithRole(role: string, setting: string): (all: Host[]) => Host[] {
  return (all) => {
    const picked = all.filter((h) => h.roles.includes(role))
    if (picked.length === 0 && all.length > 0) throw noHostWithRole(all, role, setting)
    return picked
  }
}
