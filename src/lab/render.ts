import Table from 'cli-table3'

import type {LabStatus} from './status.js'

const plain = {
  chars: {top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
    left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  '},
  style: {'padding-left': 0, 'padding-right': 0, head: [], border: []},
}

/** One row per lab process: what, where, pid, up or down (no borders, so it greps well). */
export function labStatusTable(status: LabStatus): string {
  const table = new Table({head: ['COMPONENT', 'NAME', 'ADDRESS', 'PID', 'STATE'], ...plain})
  for (const p of status.processes) {
    table.push([p.component, p.name, `${p.address}:${p.port}`, p.pid === null ? '-' : String(p.pid), p.alive ? 'up' : 'down'])
  }
  return table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
}

/** The line under the table. */
export function labSummary(status: LabStatus): string {
  if (status.state === 'none') return `No lab in ${status.dir}.`
  const up = status.processes.filter((p) => p.alive).length
  const counts = `${status.hosts} host${status.hosts === 1 ? '' : 's'}, ${status.postgres} Postgres`
  return `Lab ${status.dir} (net 127.${status.net}.x.x, ${counts}): ${up}/${status.processes.length} processes up.`
}
