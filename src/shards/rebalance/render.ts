import {textTable} from '../../cli/text-table.js'
import {drawPicture, picture, type Picture} from '../picture.js'
import {formatBytes} from '../render.js'
import type {RebalancePlan} from './plan.js'
import type {RebalanceResult} from './run.js'
import type {RebalanceStatusReport} from './status.js'

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

const ms = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${v.toFixed(1)} ms`)
const secs = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${(v / 1000).toFixed(1)} s`)

/** The run's summary: a line per shard (outcome, writes held, time), then what it came to. */
export function rebalanceSummary(r: RebalanceResult): string {
  const rows = r.moves.map((m) => [
    String(m.shard),
    m.from,
    m.to,
    m.earlier ? `${m.outcome} (earlier)` : m.outcome,
    ms(m.freezeMs),
    secs(m.ms),
    m.error ?? '',
  ])
  const table = textTable(['SHARD', 'FROM', 'TO', 'OUTCOME', 'WRITES HELD', 'TIME', 'ERROR'], rows).trimEnd()
  const count = (o: string) => r.moves.filter((m) => m.outcome === o).length
  const done = count('moved') + count('completed')
  const parts = [`${done} of ${r.moves.length} moves done`]
  if (count('failed')) parts.push(`${count('failed')} failed`)
  if (count('skipped')) parts.push(`${count('skipped')} skipped (their server pair failed)`)
  if (count('interrupted')) parts.push(`${count('interrupted')} interrupted (resumable)`)
  if (count('pending')) parts.push(`${count('pending')} not started`)
  const how = r.interrupted
    ? 'Interrupted: run `feedops shards rebalance` again to continue.'
    : r.stopped
      ? 'Stopped: run `feedops shards rebalance` again to continue.'
      : r.ok
        ? r.moves.some((m) => m.outcome === 'moved')
          ? 'Done. The old copies stay in sync until `feedops shards complete --all` (or run with --complete).'
          : 'Done.'
        : 'Some moves failed: their shards serve from their source. Fix the cause and run `feedops shards rebalance` again.'
  return `${table}\nRebalance ${r.id}${r.continued ? ' (continued)' : ''}: ${parts.join(', ')}. ${how}`
}

export function statusText(s: RebalanceStatusReport): string {
  if (!s.rebalance) return 'No rebalance has run against this catalog.'
  const rows = s.moves.map((m) => [
    String(m.shard),
    m.from,
    m.to,
    m.outcome,
    m.phase && m.jobStatus ? `${m.phase} (${m.jobStatus})` : '-',
    ms(m.freezeMs),
    m.error ?? '',
  ])
  const table = textTable(['SHARD', 'FROM', 'TO', 'OUTCOME', 'JOB PHASE', 'WRITES HELD', 'ERROR'], rows).trimEnd()
  const r = s.rebalance
  const who = s.running ? `running (owner ${r.owner ?? 'unknown'})` : r.status === 'running' ? `not running: its process (${r.owner ?? 'unknown'}) is gone; run \`feedops shards rebalance\` to continue` : r.status
  return `${table}\nRebalance ${r.id}: ${who}${r.stopRequested ? ', stop requested' : ''}; ${s.counts.done} of ${s.counts.total} moves done, ${s.counts.left} left${s.counts.failed ? ` (${s.counts.failed} failed)` : ''}; planned from map version ${r.mapVersion} (strategy ${r.strategy}${r.drain.length ? `, draining ${r.drain.join(', ')}` : ''}).`
}
