import {textTable} from '../cli/text-table.js'

import type {RecountResult} from './counts.js'
import type {InitResult} from './init.js'
import type {MapReport} from './map-report.js'

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
  const rows = report.servers.map((s) => [
      s.server,
      String(s.shards),
      String(s.states.active),
      String(s.states.frozen),
      String(s.states.moving),
      s.rows === null ? '-' : String(s.rows),
      s.bytes === null ? '-' : formatBytes(s.bytes),
      s.error ?? '',
    ])
  return textTable(['SERVER', 'SHARDS', 'ACTIVE', 'FROZEN', 'MOVING', report.exact ? 'ROWS' : 'ROWS~', 'BYTES', 'NOTE'], rows).trimEnd()
}

export function initTable(result: InitResult): string {
  const rows = result.servers.map((s) => [s.server, String(s.shards), String(s.created), String(s.existing), s.error ?? ''])
  return textTable(['SERVER', 'SHARDS', 'CREATED', 'EXISTING', 'ERROR'], rows).trimEnd()
}

/** `shards recount`: a table per server and the summary line. */
export function renderRecount(r: RecountResult): string[] {
  const n = (x: number) => x.toLocaleString('en-US')
  const table = textTable(['SERVER', 'SHARDS', 'USERS', 'ERROR'], r.servers.map((s) => [s.server, String(s.shards), n(s.users), s.error ?? ''])).trimEnd()
  const summary = r.complete
    ? `Recounted ${n(r.follows)} follows: wrote the follower and following counts of ${n(r.users)} users in ${r.seconds} s.`
    : `The recount did not finish (see ERROR); ${n(r.users)} users were written, the others keep their old counts. ${r.seconds} s.`
  return [table, summary]
}
