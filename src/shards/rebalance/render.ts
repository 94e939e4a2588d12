import {textTable} from '../../cli/text-table.js'
import {drawPicture, picture, type Picture} from '../picture.js'
import {formatBytes} from '../render.js'
import type {RebalancePlan} from './plan.js'

/** The plan's picture: per server, before and after. */
export function planPicture(plan: RebalancePlan): Picture {
  const note = (s: RebalancePlan['servers'][number]) => (s.draining ? 'draining' : !s.configured ? 'not configured' : undefined)
  return picture(
    ['before', 'after'],
    [
      plan.servers.map((s) => ({server: s.server, shards: s.before.shards, bytes: s.before.bytes, ...(note(s) ? {note: note(s)} : {})})),
      plan.servers.map((s) => ({server: s.server, shards: s.after.shards, bytes: s.after.bytes})),
    ],
  )
}

export function planMovesTable(plan: RebalancePlan): string {
  return textTable(
    ['SHARD', 'FROM', 'TO', 'ROWS~', 'BYTES', 'WHY'],
    plan.moves.map((m) => [String(m.shard), m.from, m.to, String(m.rows), formatBytes(m.bytes), m.reason]),
  ).trimEnd()
}

/** `shards plan` for people: the moves, the picture, then one line of what it is. */
export function planText(plan: RebalancePlan, opts: {unicode: boolean}): string {
  const lines: string[] = []
  if (plan.moves.length > 0) lines.push(planMovesTable(plan), '')
  lines.push(drawPicture(planPicture(plan), opts), '')
  for (const n of plan.notes) lines.push(`note: ${n}`)
  const bytes = plan.moves.reduce((a, m) => a + m.bytes, 0)
  const what = plan.drain.length > 0 ? `, draining ${plan.drain.join(', ')}` : ''
  lines.push(
    plan.moves.length === 0
      ? `Nothing to move (strategy ${plan.strategy}, threshold ${plan.threshold}%${what}); map version ${plan.mapVersion}.`
      : `${plan.moves.length} move${plan.moves.length > 1 ? 's' : ''}, ${formatBytes(bytes)} (strategy ${plan.strategy}, threshold ${plan.threshold}%${what}); made from map version ${plan.mapVersion}.`,
  )
  return lines.join('\n')
}
