import {textTable} from '../cli/text-table.js'

import type {Host} from './host.js'

/** Hosts as aligned columns (no borders, so it greps and diffs well). */
export function hostsTable(hosts: Host[]): string {
  const rows = hosts.map((h) => {
    const address = h.port ? `${h.address}:${h.port}` : h.address
    const tags = Object.entries(h.tags)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')
    return [h.name, address, h.roles.join(',') || '-', h.instanceId ?? '-', tags || '-']
  })
  return textTable(['NAME', 'ADDRESS', 'ROLES', 'INSTANCE', 'TAGS'], rows).trimEnd()
}
