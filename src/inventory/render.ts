import Table from 'cli-table3'

import type {Host} from './host.js'

const plain = {
  chars: {top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
    left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  '},
  style: {'padding-left': 0, 'padding-right': 0, head: [], border: []},
}

/** Hosts as aligned columns (no borders, so it greps and diffs well). */
export function hostsTable(hosts: Host[]): string {
  const table = new Table({head: ['NAME', 'ADDRESS', 'ROLES', 'INSTANCE', 'TAGS'], ...plain})
  for (const h of hosts) {
    const address = h.port ? `${h.address}:${h.port}` : h.address
    const tags = Object.entries(h.tags)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')
    table.push([h.name, address, h.roles.join(',') || '-', h.instanceId ?? '-', tags || '-'])
  }
  return table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
}
