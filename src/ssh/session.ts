import type {EnvironmentConfig} from '../config/schema.js'
import {UserError} from '../errors.js'
import {selectHosts, type Host, type HostSelection} from '../inventory/host.js'
import {loadInventory} from '../inventory/index.js'
import {ConnectionPool} from './pool.js'

export interface SessionOptions extends HostSelection {
  acceptNew?: boolean
  /** Seconds; overrides ssh.connectTimeout. */
  connectTimeout?: number
  /** Picks hosts when neither role nor hosts is given (default: every host). */
  defaultSelection?: (all: Host[]) => Host[]
}

export interface Session {
  hosts: Host[]
  /** Every host of the inventory, selected or not. */
  inventory: Host[]
  pool: ConnectionPool
}

/**
 * Everything a multi-host command needs before it touches a host: the inventory and the connection pool
 * (known_hosts, ssh config, key checks) are loaded side by side; a bad selection or setting is a UserError
 * before any connection is opened.
 */
export async function openSession(env: EnvironmentConfig, opts: SessionOptions = {}): Promise<Session> {
  const ssh = opts.connectTimeout !== undefined ? {...env.ssh, connectTimeout: opts.connectTimeout} : env.ssh
  const [all, pool] = await Promise.all([loadInventory(env), ConnectionPool.create(ssh, {acceptNew: opts.acceptNew ?? false})])
  const explicit = Boolean(opts.role) || (opts.hosts?.length ?? 0) > 0
  const hosts = explicit || !opts.defaultSelection ? selectHosts(all, opts) : opts.defaultSelection(all)
  if (hosts.length === 0) throw new UserError('The inventory has no hosts.', {fix: 'Check the inventory section of the config.'})
  return {hosts, inventory: all, pool}
}
