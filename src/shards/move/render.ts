import {textTable} from '../../cli/text-table.js'
import type {ShardCheck} from './check.js'
import type {Finding} from './doctor.js'
import type {FenceRepair} from './fences.js'
import type {MoveJob} from './jobs.js'
import type {MoveResult} from './run.js'
import {clause} from './sentence.js'

const ms = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${x.toFixed(1)} ms`)

export function moveSummary(r: MoveResult): string {
  const {job, facts} = r
  const lines: string[] = []
  if (r.start !== 'new') lines.push(`Job ${job.id}: ${r.startNote ?? r.start}.`)
  lines.push(
    textTable(
      ['PHASE', 'TIME', 'RESULT'],
      r.phases.map((p) => [p.phase, `${(p.ms / 1000).toFixed(2)} s`, p.ok ? 'ok' : `FAILED: ${p.detail ?? ''}`]),
    ).trimEnd(),
  )
  if (facts.verify) {
    lines.push(
      textTable(
        ['TABLE', 'ROWS', 'MATCH'],
        facts.verify.tables.map((t) => [t.table, t.ok ? String(t.primaryRows) : `${t.primaryRows} vs ${t.replicaRows}`, t.ok ? 'yes' : 'NO']),
      ).trimEnd(),
    )
  }
  if (r.ok && r.prepared) {
    lines.push(`Shard ${job.shard} is copied to ${job.target} and streaming (lag ${ms(facts.lagMs)}); run \`feedops shards move ${job.shard} --to ${job.target}\` again to verify and switch.`)
  } else if (r.ok) {
    // A switch made by an earlier run that died before recording its freeze: the lease bounds it (the
    // catalog refuses a flip past it).
    const held =
      facts.freezeMs !== undefined
        ? `writes held ${ms(facts.freezeMs)}`
        : facts.freezeLeaseMs !== undefined
          ? `writes held at most ${facts.freezeLeaseMs} ms (the freeze lease; the run that switched the map died before recording how long)`
          : `writes held ${ms(facts.freezeMs)}`
    lines.push(
      `Shard ${job.shard} moved from ${job.source} to ${job.target} (job ${job.id}): ${held}` +
        `${facts.version === undefined ? '' : `, map version ${facts.version}`}. ${job.source} keeps a fenced copy in sync until ` +
        `\`feedops shards complete ${job.shard}\` (or \`revert\` to move back).`,
    )
  } else {
    lines.push(
      r.discarded
        ? `The move of shard ${job.shard} did not start: ${clause(r.error ?? '')}. Nothing was changed and no job was kept; fix that and run the command again.`
        : `The move of shard ${job.shard} stopped at ${job.phase}: ${clause(r.error ?? '')}. Run the same command again to resume, or \`feedops shards revert ${job.shard}\` to undo.`,
    )
  }
  return lines.join('\n')
}

export function jobsTable(jobs: readonly MoveJob[]): string {
  return textTable(
    ['JOB', 'SHARD', 'FROM', 'TO', 'PHASE', 'STATUS', 'FREEZE', 'OWNER', 'UPDATED', 'ERROR'],
    jobs.map((j) => [
      String(j.id),
      String(j.shard),
      j.source,
      j.target,
      j.phase,
      j.status,
      ms(j.freezeMs),
      j.status === 'running' ? (j.owner ?? '-') : '-',
      j.updatedAt.replace(/\.\d+Z$/, 'Z'),
      j.error ?? '',
    ]),
  ).trimEnd()
}

export function checksTable(checks: readonly ShardCheck[]): string {
  return textTable(
    ['SHARD', 'HOME', 'COPIES', 'COMPARED', 'RESULT'],
    checks.map((c) => [
      String(c.shard),
      c.server,
      c.copies.map((x) => `${x.server} (${x.role})`).join(', ') || '-',
      c.verify ? `${c.verify.tables.length} tables, ${c.verify.tables.reduce((a, t) => a + t.primaryRows, 0)} rows` : '-',
      c.problems.length === 0 ? 'ok' : c.problems.join('; '),
    ]),
  ).trimEnd()
}

export function findingsTable(findings: readonly Finding[], fix: boolean): string {
  return textTable(
    ['KIND', 'SERVER', 'NAME', 'WHY', ...(fix ? ['FIXED'] : [])],
    findings.map((f) => [f.kind, f.server, f.name, f.detail, ...(fix ? [f.fixed ? 'yes' : `no: ${f.error ?? ''}`] : [])]),
  ).trimEnd()
}

export function fenceRepairsText(repairs: readonly FenceRepair[]): string {
  return repairs
    .map((r) => `Shard ${r.shard} (job ${r.job}): ${r.action === 'lifted' ? `lifted the fence on ${r.server}, its home` : `fenced the old copy on ${r.server} for good`}.`)
    .join('\n')
}

export function orphanedJobsText(jobs: readonly MoveJob[]): string {
  return jobs.map((j) => `Job ${j.id} (shard ${j.shard}, ${j.phase}) was marked running, but its process is gone: marked failed; run \`feedops shards move ${j.shard} --to ${j.target}\` to resume it.`).join('\n')
}
