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

/** Every host of the environment, from its inventory source, sorted by name (app2 before app10). */
export async function loadInventory(env: EnvironmentConfig, opts: InventoryOptions = {}): Promise<Host[]> {
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
