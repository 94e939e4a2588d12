import type {StaticHost} from '../config/schema.js'
import type {Host} from './host.js'

/** inventory.source: static — hosts listed in feedops.yml; the address defaults to the name. */
export function staticHosts(hosts: StaticHost[]): Host[] {
  return hosts.map((h) => ({
    name: h.name,
    address: h.address ?? h.name,
    ...(h.port !== undefined ? {port: h.port} : {}),
    ...(h.user !== undefined ? {user: h.user} : {}),
    roles: [...h.roles],
    tags: {...h.tags},
  }))
}
