import {textTable} from '../cli/text-table.js'

import type {LabStatus} from './status.js'

/** One row per lab process: what, where, pid, up or down (no borders, so it greps well). */
export function labStatusTable(status: LabStatus): string {
  const rows = status.processes.map((p) => [p.component, p.name, `${p.address}:${p.port}`, p.pid === null ? '-' : String(p.pid), p.alive ? 'up' : 'down'])
  return textTable(['COMPONENT', 'NAME', 'ADDRESS', 'PID', 'STATE'], rows).trimEnd()
}

/** The line under the table. */
export function labSummary(status: LabStatus): string {
  if (status.state === 'none') return `No lab in ${status.dir}.`
  const up = status.processes.filter((p) => p.alive).length
  const nginx = status.nginx > 0 ? `, ${status.nginx} NGINX node${status.nginx === 1 ? '' : 's'}` : ''
  const counts = `${status.hosts} host${status.hosts === 1 ? '' : 's'}${nginx}, ${status.postgres} Postgres`
  return `Lab ${status.dir} (net 127.${status.net}.x.x, ${counts}): ${up}/${status.processes.length} processes up.`
}
