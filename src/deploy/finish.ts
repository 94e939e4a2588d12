import type {RemoteStep} from '../ssh/command.js'
import {appendLocalAudit, localAuditFile, localAuditKey, type AuditEntry} from './audit.js'
import type {DeployContext} from './context.js'
import type {UnfinishedRun} from './history.js'
import {eachState, type HostState} from './remote.js'
import type {DeployResult} from './result.js'
import {hasRelease} from './ship.js'
import * as steps from './steps.js'

/**
 * Finish: per host, in one command, the marks this run owes (BAD where the release's code failed on that
 * host, ABANDONED where it was rolled away from or left by a run that failed or died), the end line of the
 * audit (`finished`, or `rolled back`), and `keep` (marked releases pruned first); then the local audit.
 */

interface MarkTodo {
  release: string
  mark: steps.Mark
  why: string
}

/** The marks a host gets from this run's end (pure: what the run saw, what it left). */
export function marksFor(s: HostState, r: Pick<DeployResult, 'action' | 'stopped' | 'release' | 'run' | 'operator'>, unfinished: readonly UnfinishedRun[]): MarkTodo[] {
  const out: MarkTodo[] = []
  const present = (id: string) => hasRelease(s, id)
  const target = s.result.target
  if (r.action === 'deploy' && target && present(target)) {
    if (s.codeFailed) out.push({release: target, mark: 'BAD', why: `failed on this host: ${s.result.error ?? 'its gate'}`})
    else if (s.configFailed) out.push({release: target, mark: 'ABANDONED', why: `its config failed on this host (not its code): ${s.result.error ?? 'its gate'}`})
    else if (r.stopped === 'max-fail') out.push({release: target, mark: 'ABANDONED', why: 'rolled away from: the deploy stopped past max-fail on other hosts'})
    else if (r.stopped === 'ship') out.push({release: target, mark: 'ABANDONED', why: 'the deploy stopped before any switch: too many hosts did not get it'})
  }
  if (r.action === 'rollback') {
    if (s.codeFailed && target) out.push({release: target, mark: 'BAD', why: `failed on this host: ${s.result.error ?? 'its gate'}`})
    const away = s.result.previous
    if (s.result.outcome === 'updated' && away && away !== target) out.push({release: away, mark: 'ABANDONED', why: `rolled away from by rollback ${r.run}`})
  }
  for (const u of unfinished) {
    for (const id of u.releases) {
      if (id !== s.result.current && s.probe!.releases.includes(id)) out.push({release: id, mark: 'ABANDONED', why: `left by ${u.action} ${u.run} of ${u.who} at ${u.at}, which never finished`})
    }
  }
  return out
}

export async function finish(ctx: DeployContext, result: DeployResult, active: HostState[]): Promise<void> {
  // Stopped because the config failed on the hosts, and nowhere because of the code: said as such, not BAD.
  result.configFailure = result.stopped === 'max-fail' && active.some((s) => s.configFailed) && !active.some((s) => s.codeFailed)
  const ended = result.stopped === 'max-fail' ? 'rolled back' : 'finished'
  const outcome: NonNullable<AuditEntry['result']> = result.stopped === 'interrupted' ? 'interrupted' : result.stopped === 'max-fail' ? 'rolled back' : result.ok ? 'ok' : 'failed'
  const hosts = Object.fromEntries(result.hosts.map((h) => [h.host, h.outcome]))
  const accounted = result.unfinished.map((u) => u.run)
  const end = {
    event: ended,
    release: result.release,
    result: outcome,
    hosts,
    ...(ctx.opts.message ? {message: ctx.opts.message} : {}),
    ...(accounted.length > 0 ? {accounted} : {}),
  } as const
  const at = new Date().toISOString()
  await eachState(
    active,
    async (s) => {
      const marks = marksFor(s, result, result.unfinished)
      const work: RemoteStep[] = marks.map((m) => steps.markStep(s.layout!, m.release, m.mark, {why: m.why, at, by: ctx.operator, run: ctx.run}))
      work.push(steps.appendAuditStep(s.layout!, ctx.line(end)))
      const marked = [...new Set([...s.probe!.bad, ...s.probe!.abandoned, ...marks.map((m) => m.release)])]
      const remove =
        result.action === 'deploy' && s.result.outcome === 'updated'
          ? steps.releasesToRemove([...new Set([...s.probe!.releases, result.release])], ctx.settings.keep, s.result.current, s.result.previous, marked)
          : []
      if (remove.length > 0) work.push(steps.removeReleasesStep(s.layout!, remove))
      const run = () => s.remote!.run(steps.inOrder(...work))
      const done = await (remove.length > 0 ? ctx.timed(s, 'cleanup', run) : run()).then(
        () => true,
        () => false,
      )
      if (!done) return
      for (const m of marks) {
        if (m.mark === 'BAD' && m.release === result.release) result.markedBad.push(s.host.name)
        else (result.markedAbandoned[m.release] ??= []).push(s.host.name)
      }
      if (remove.length > 0) result.removed[s.host.name] = remove
    },
    {concurrency: ctx.concurrency},
  )
  result.markedBad.sort()
  for (const list of Object.values(result.markedAbandoned)) list.sort()
  appendLocalAudit(JSON.parse(ctx.line(end)) as AuditEntry, localAuditFile(localAuditKey(ctx.loaded.environment, ctx.env)))
  for (const s of active) {
    if (s.result.outcome === 'updated' || s.result.outcome === 'unchanged') ctx.say(s.host.name, `runs ${s.result.current ?? 'nothing'}`, {ok: true})
    else ctx.say(s.host.name, s.result.outcome, {ok: false})
  }
}

/** The end line of a run that stopped before it changed anything (Ctrl-C in preflight, a refusal under the lock). */
export async function closeRun(ctx: DeployContext, result: DeployResult, probed: HostState[], outcome: NonNullable<AuditEntry['result']>): Promise<void> {
  const line = ctx.line({event: 'finished', release: result.release, result: outcome, hosts: Object.fromEntries(probed.map((s) => [s.host.name, s.result.outcome]))})
  await eachState(probed, (s) => s.remote!.run(steps.appendAuditStep(s.layout!, line)).then(() => undefined, () => undefined), {concurrency: ctx.concurrency})
  appendLocalAudit(JSON.parse(line) as AuditEntry)
}
