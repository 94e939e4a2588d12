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
  /** Connections opened while the inventory is still being listed: at most this many (default: ssh.concurrency). */
  concurrency?: number
}

export interface Session {
  hosts: Host[]
  /** Every host of the inventory, selected or not. */
  inventory: Host[]
  pool: ConnectionPool
  /** Hosts whose connection was started before the inventory's last page had arrived. */
  earlyConnects: number
}

/**
 * Everything a multi-host command needs before it touches a host: the inventory and the connection pool
 * (known_hosts, ssh config, identity) are loaded side by side; a bad selection or setting is a UserError
 * before any command runs on a host.
 *
 * An EC2 inventory comes in pages; the hosts of each page that the selection will keep are connected to as
 * the page arrives (up to the concurrency), so the handshakes overlap the rest of the listing. A connection
 * changes nothing on a host, and every one is closed if the whole inventory then turns out bad (a name twice,
 * an unknown --hosts name). Not with --accept-new, which would record host keys before the input is checked,
 * nor with a command's own default selection, which needs the whole inventory.
 */
export async function openSession(env: EnvironmentConfig, opts: SessionOptions = {}): Promise<Session> {
  const ssh = opts.connectTimeout !== undefined ? {...env.ssh, connectTimeout: opts.connectTimeout} : env.ssh
  let early: ReturnType<typeof earlyConnector> | undefined
  // The inventory's first request goes out first; the pool's files are read while it is answered.
  const inventory = loadInventory(env, {onHosts: (hosts) => early?.offer(hosts)})
  const poolReady = ConnectionPool.create(ssh, {acceptNew: opts.acceptNew ?? false})
  poolReady.catch(() => {})
  const explicit = Boolean(opts.role) || (opts.hosts?.length ?? 0) > 0
  if (!opts.acceptNew && (explicit || !opts.defaultSelection)) early = earlyConnector(poolReady, opts, opts.concurrency ?? ssh.concurrency)

  let all: Host[]
  try {
    ;[all] = await Promise.all([inventory, poolReady])
  } catch (err) {
    early?.cancel()
    throw err
  }
  const pool = await poolReady
  try {
    const hosts = explicit || !opts.defaultSelection ? selectHosts(all, opts) : opts.defaultSelection(all)
    if (hosts.length === 0) throw new UserError('The inventory has no hosts.', {fix: 'Check the inventory section of the config.'})
    return {hosts, inventory: all, pool, earlyConnects: early?.started ?? 0}
  } catch (err) {
    pool.close()
    throw err
  }
}

/** Starts connections to the selected hosts of each page as it arrives, once the pool is ready. */
function earlyConnector(poolReady: Promise<ConnectionPool>, sel: HostSelection, limit: number) {
  const wanted = (h: Host) =>
    (!sel.role || h.roles.includes(sel.role)) && (!sel.hosts?.length || sel.hosts.includes(h.name) || sel.hosts.includes(h.address))
  let cancelled = false
  const state = {
    started: 0,
    offer(hosts: Host[]): void {
      const picked = hosts.filter(wanted).slice(0, Math.max(0, limit - state.started))
      state.started += picked.length
      if (picked.length === 0) return
      poolReady.then(
        (pool) => {
          if (cancelled) return
          for (const h of picked) pool.connect(h)
        },
        () => {},
      )
    },
    cancel(): void {
      cancelled = true
      poolReady.then((pool) => pool.close(), () => {})
    },
  }
  return state
}
