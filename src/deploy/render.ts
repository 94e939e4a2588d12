import {textTable} from '../cli/text-table.js'
import {formatDuration} from '../ssh/results.js'
import type {DeployResult, Phase, PhaseTiming} from './run.js'
import type {UnfinishedRun} from './history.js'
import type {AuditRow, FleetStatus} from './status.js'

/** Human output of deploy, rollback, releases and audit, from the same results --json prints. */

const MARK: Record<Phase, string> = {
  'upload runtime': 'N',
  upload: 'u',
  unpack: 'x',
  'upload cache': 'k',
  switch: 's',
  restart: 'R',
  health: 'h',
  'switch back': 'b',
  cleanup: 'c',
}

const WIDTH = 40

/** One line per host: its phases on a shared time axis, so a slow host stands out. */
export function timeline(phases: readonly PhaseTiming[], totalMs: number): string {
  const cells = Array<string>(WIDTH).fill(' ')
  const scale = WIDTH / Math.max(1, totalMs)
  for (const p of phases) {
    const from = Math.min(WIDTH - 1, Math.floor(p.startMs * scale))
    const to = Math.min(WIDTH, Math.max(from + 1, Math.round((p.startMs + p.ms) * scale)))
    for (let i = from; i < to; i++) cells[i] = p.ok ? MARK[p.phase] : '!'
  }
  return `|${cells.join('')}|`
}

export function renderPlan(r: DeployResult): string {
  const p = r.plan
  const lines = [
    `${r.action === 'deploy' ? 'Deploy' : 'Rollback to'} ${p.release} (node ${p.runtime}) — dry run, nothing was changed`,
    `lock: ${p.lockHost}${p.lock ? ` (held now by ${p.lock.owner.owner ?? '?'}, heartbeat ${p.lock.heartbeatAgeS} s ago)` : ' (free)'}`,
    ...p.batches.map((b, i) => `batch ${i + 1}: ${b.join(', ')}`),
    ...(p.runtimeUploads.length > 0 ? [`runtime upload: ${p.runtimeUploads.join(', ')}`] : []),
    ...(p.skipped.length > 0 ? [`skipped (unreachable): ${p.skipped.join(', ')}`] : []),
    ...(r.action === 'rollback' ? ['targets:', ...r.hosts.filter((h) => h.target).map((h) => `  ${h.host}: ${h.current ?? '(none)'} -> ${h.target}${h.outcome === 'unchanged' ? ' (runs it already)' : ''}, ${h.targetSource ?? ''}`)] : []),
    ...unfinishedLines(r.unfinished),
    ...r.warnings.map((w) => `warning: ${w}`),
    'steps:',
    ...p.steps.map((s, i) => `  ${i + 1}. ${s}`),
  ]
  return `${lines.join('\n')}\n`
}

export function renderDeploy(r: DeployResult): string {
  if (r.dryRun) return renderPlan(r)
  const total = r.durationMs
  const rows = r.hosts.map((h) => {
    const busy = h.phases.reduce((sum, p) => sum + p.ms, 0)
    return [h.host, h.outcome, h.current ?? '-', timeline(h.phases, total), formatDuration(busy), h.error ?? '']
  })
  const count = (o: string) => r.hosts.filter((h) => h.outcome === o).length
  const parts = ['updated', 'unchanged', 'failed', 'rolled-back', 'revert-failed', 'ship-failed', 'interrupted', 'not-started', 'skipped']
    .map((o) => [o, count(o)] as const)
    .filter(([, n]) => n > 0)
    .map(([o, n]) => `${n} ${o}`)
  const verb = r.action === 'deploy' ? 'Deploy of' : 'Rollback to'
  const how = r.ok ? 'done' : r.stopped === 'interrupted' ? 'interrupted' : r.stopped === 'max-fail' ? (r.configFailure ? 'stopped for a config failure and rolled back' : 'stopped past --max-fail and rolled back') : r.stopped === 'ship' ? 'stopped: too many hosts did not get the release' : 'failed on some hosts'
  const notes = [
    ...(r.brokeLock ? [`broke a stale lock of ${r.brokeLock.owner.owner ?? '?'} (heartbeat ${r.brokeLock.heartbeatAgeS} s old)`] : []),
    ...unfinishedLines(r.unfinished),
    ...r.warnings.map((w) => `warning: ${w}`),
    ...(r.bakedMs > 0 ? [`baked ${formatDuration(r.bakedMs)}: every updated host re-checked every second (same release, same pid)`] : []),
    ...(r.markedBad.length > 0 ? [`${r.release} is marked bad on ${r.markedBad.join(', ')} (it failed there)`] : []),
    ...Object.entries(r.markedAbandoned).map(([id, hosts]) => `${id} is marked abandoned on ${hosts.join(', ')}`),
    ...(r.configFailure ? [`the config failed on the hosts, not the code: ${r.release} is not marked bad (fix the config and deploy again)`] : []),
    ...Object.entries(r.removed).length > 0 ? [`removed old releases on ${Object.keys(r.removed).length} hosts`] : [],
  ]
  if (!r.release) return `${notes.map((n) => `${n}\n`).join('')}${r.action === 'deploy' ? 'Deploy' : 'Rollback'} interrupted before any host was changed (${formatDuration(r.durationMs)})\n`
  return (
    textTable(['HOST', 'OUTCOME', 'CURRENT', 'TIMELINE', 'BUSY', 'ERROR'], rows) +
    'timeline: N runtime upload, u upload, x unpack, k compile cache, s switch, R restart, h health gate, b switch back, c cleanup, ! failed\n' +
    notes.map((n) => `${n}\n`).join('') +
    `${verb} ${r.release} ${how}: ${parts.join(', ')} in ${formatDuration(r.durationMs)}\n`
  )
}

function unfinishedLines(runs: readonly UnfinishedRun[]): string[] {
  return runs.map(
    (u) =>
      `a ${u.action} run ${u.run} by ${u.who} started ${u.at} and never finished${u.switched.length > 0 ? `; it had switched ${u.switched.join(', ')}${u.releases.length > 0 ? ` to ${u.releases.join(', ')}` : ''}` : '; it switched no host'}`,
  )
}

export function renderReleases(status: FleetStatus): string {
  const rows = status.hosts
  const body = rows.map((r) => [
    r.host,
    r.current ?? '-',
    r.error ? '?' : (r.running ?? 'nothing answers'),
    r.error ? '' : r.differs ? 'DIFFERS' : 'ok',
    r.restarts === null ? '-' : `${r.restarts}${r.gaveUp ? ' (gave up)' : ''}`,
    r.releases.map((id) => (r.bad.includes(id) ? `${id}(bad)` : r.abandoned.includes(id) ? `${id}(abandoned)` : id)).join(' '),
    r.error ?? '',
  ])
  const differ = rows.filter((r) => !r.error && r.differs).map((r) => r.host)
  const l = status.lock
  const lock = l.error
    ? `lock on ${l.host}: unknown (${l.error})`
    : l.holder
      ? `lock on ${l.host}: ${l.stale ? 'STALE' : 'held'} by ${l.holder.owner.owner ?? '?'}${l.holder.owner.pid ? ` (pid ${l.holder.owner.pid})` : ''}${l.holder.owner.since ? ` since ${l.holder.owner.since}` : ''}, ${l.holder.owner.action ?? '?'}${l.holder.owner.release ? ` ${l.holder.owner.release}` : ''}; last heartbeat ${l.holder.heartbeatAgeS} s ago${l.stale ? ' (break it with --force-unlock once that run is gone)' : ''}`
      : `lock on ${l.host}: free`
  const split = status.split
    ? `The fleet is split: ${Object.entries(status.split.releases)
        .map(([id, hosts]) => `${id} on ${hosts.join(', ')}`)
        .join('; ')}. To converge: ${status.split.converge}\n`
    : ''
  return (
    textTable(['HOST', 'CURRENT', 'RUNNING', 'MATCH', 'RESTARTS', 'RELEASES', 'ERROR'], body) +
    (differ.length > 0 ? `On ${differ.join(', ')} the running process does not report the release current points at.\n` : '') +
    `${lock}\n` +
    unfinishedLines(status.unfinished)
      .map((u) => `${u}\n`)
      .join('') +
    split
  )
}

export function renderAudit(rows: readonly AuditRow[]): string {
  return textTable(
    ['WHEN', 'WHERE', 'WHO', 'ACTION', 'RUN', 'EVENT', 'RELEASE', 'RESULT', 'HOSTS'],
    rows.map((e) => {
      const counts = new Map<string, number>()
      for (const o of Object.values(e.hosts)) counts.set(o, (counts.get(o) ?? 0) + 1)
      const what = e.event === 'switched' ? `${e.from ?? '(none)'} -> ${e.to ?? '(none)'}${e.back ? ' (back)' : ''}` : e.release
      return [e.at, e.source, e.who, e.action, e.run ?? '', e.event ?? 'finished', what, e.result ?? '', [...counts].map(([o, n]) => `${n} ${o}`).join(', ')]
    }),
  )
}
