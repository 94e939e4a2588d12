import Table from 'cli-table3'

import type {InitResult} from './init.js'
import type {MapReport} from './map-report.js'

const plain = {
  chars: {top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
    left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  '},
  style: {'padding-left': 0, 'padding-right': 0, head: [], border: []},
}

function render(table: Table.Table): string {
  return table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
}

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`
}

export function mapTable(report: MapReport): string {
  const table = new Table({head: ['SERVER', 'SHARDS', 'ACTIVE', 'FROZEN', 'MOVING', report.exact ? 'ROWS' : 'ROWS~', 'BYTES', 'NOTE'], ...plain})
  for (const s of report.servers) {
    table.push([
      s.server,
      String(s.shards),
      String(s.states.active),
      String(s.states.frozen),
      String(s.states.moving),
      s.rows === null ? '-' : String(s.rows),
      s.bytes === null ? '-' : formatBytes(s.bytes),
      s.error ?? '',
    ])
  }
  return render(table)
}

export function initTable(result: InitResult): string {
  const table = new Table({head: ['SERVER', 'SHARDS', 'CREATED', 'EXISTING', 'ERROR'], ...plain})
  for (const s of result.servers) table.push([s.server, String(s.shards), String(s.created), String(s.existing), s.error ?? ''])
  return render(table)
}
