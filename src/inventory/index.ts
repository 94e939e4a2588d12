import type {EnvironmentConfig} from '../config/schema.js'
import {ec2Hosts, type Ec2ClientOptions} from './ec2.js'
import type {Host} from './host.js'
import {assertUniqueNames, sortHosts} from './sort.js'
import {staticHosts} from './static.js'
import {markPhase} from '../start-timing.js'

export type {Host, HostSelection} from './host.js'
export {selectHosts} from './host.js'

export interface InventoryOptions {
  ec2?: Ec2ClientOptions
  /**
   * Called with each EC2 page's hosts as the page arrives (not for a static list, which is there at once), before
   * the whole inventory is checked (unique names): for work that may start early and be undone, such as
   * opening connections.
   */
  onHosts?: (hosts: Host[]) => void
}

interface EarlyListing {
  hosts: Promise<Host[]>
  abort: AbortController
  /** Hands the pages that came so far, and each one that comes later, to `onHosts`. */
  follow(onHosts: (hosts: Host[]) => void): void
}

const early = new WeakMap<EnvironmentConfig, EarlyListing>()

/**
 * Starts listing an EC2 inventory now, for the next loadInventory of this same environment (object) to take
 * over: the CLI calls it as soon as it has read the config, so the request is answered while oclif and the
 * command load (src/cli/prefetch.ts). A static inventory needs no head start.
 */
export function startInventory(env: EnvironmentConfig): void {
  if (env.inventory.source !== 'ec2' || early.has(env)) return
  const pages: Host[][] = []
  let onPage: ((hosts: Host[]) => void) | undefined
  const abort = new AbortController()
  const hosts = listInventory(env, {
    ec2: {signal: abort.signal},
    onHosts: (page) => {
      pages.push(page)
      onPage?.(page)
    },
  })
  hosts.catch(() => {}) // the command that takes it over reports the error
  early.set(env, {
    hosts,
    abort,
    follow(fn) {
      for (const page of pages) fn(page)
      onPage = fn
    },
  })
}

/**
 * Drops a listing startInventory began that no loadInventory took over (the command failed before it
 * listed hosts), so its request does not keep the process alive.
 */
export function abandonInventory(env: EnvironmentConfig): void {
  early.get(env)?.abort.abort()
  early.delete(env)
}

/** Every host of the environment, from its inventory source, sorted by name (app2 before app10). */
export async function loadInventory(env: EnvironmentConfig, opts: InventoryOptions = {}): Promise<Host[]> {
  const started = opts.ec2 ? undefined : early.get(env)
  if (!started) return listInventory(env, opts)
  early.delete(env)
  if (opts.onHosts) started.follow(opts.onHosts)
  return started.hosts
}

async function listInventory(env: EnvironmentConfig, opts: InventoryOptions): Promise<Host[]> {
  const inv = env.inventory
  if (inv.source === 'static') {
    const hosts = staticHosts(inv.hosts)
    assertUniqueNames(hosts, 'The static inventory', 'Give each host in inventory.hosts its own name.')
    markPhase('inventory', `static, ${hosts.length} hosts`)
    return sortHosts(hosts)
  }
  const onHosts = opts.onHosts
  const hosts = await ec2Hosts(inv, env.aws, {...opts.ec2, ...(onHosts ? {onHosts} : {})})
  assertUniqueNames(hosts, 'The EC2 inventory', `Give each instance its own ${inv.nameTag} tag, or remove the tag to fall back to instance ids.`)
  markPhase('inventory', `ec2, ${hosts.length} hosts`)
  return sortHosts(hosts)
}
