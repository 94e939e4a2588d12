import type {EnvironmentConfig} from '../config/schema.js'
import {ec2Hosts, type Ec2ClientOptions} from './ec2.js'
import type {Host} from './host.js'
import {assertUniqueNames, sortHosts} from './sort.js'
import {staticHosts} from './static.js'

export type {Host, HostSelection} from './host.js'
export {selectHosts} from './host.js'

export interface InventoryOptions {
  ec2?: Ec2ClientOptions
}

/** Every host of the environment, from its inventory source, sorted by name (app2 before app10). */
export async function loadInventory(env: EnvironmentConfig, opts: InventoryOptions = {}): Promise<Host[]> {
  const inv = env.inventory
  if (inv.source === 'static') {
    const hosts = staticHosts(inv.hosts)
    assertUniqueNames(hosts, 'The static inventory', 'Give each host in inventory.hosts its own name.')
    return sortHosts(hosts)
  }
  const hosts = await ec2Hosts(inv, env.aws, opts.ec2)
  assertUniqueNames(hosts, 'The EC2 inventory', `Give each instance its own ${inv.nameTag} tag, or remove the tag to fall back to instance ids.`)
  return sortHosts(hosts)
}
