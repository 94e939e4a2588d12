import {eventOf, type AuditEntry} from './audit.js'

/**
 * What the audit lines on the hosts say about the fleet's past, as pure functions (no SSH): the runs that
 * took the lock and never wrote their end, and the release a host ran before the last change to it, which
 * is where `rollback` (no --to) sends it. History, not release ids: the newest older id may be a release
 * that was rolled away from, abandoned by a run that died, or never ran at all.
 */

export interface UnfinishedRun {
  run: string
  who: string
  at: string
  action: 'deploy' | 'rollback'
  /** The releases its switched lines moved hosts to. */
  releases: string[]
  /** Hosts it had moved off what they ran before (and not moved back). */
  switched: string[]
}

/**
 * Runs with a `started` line and no end, not accounted for by a later run's end, other than `exceptRun`,
 * oldest first. `linesByHost` is every host's audit lines.
 */
export function unfinishedRuns(linesByHost: ReadonlyMap<string, readonly AuditEntry[]>, exceptRun?: string): UnfinishedRun[] {
  const started = new Map<string, AuditEntry>()
  const ended = new Set<string>()
  for (const lines of linesByHost.values()) {
    for (const e of lines) {
      if (!e.run) continue
      const ev = eventOf(e)
      if (ev === 'started' && !started.has(e.run)) started.set(e.run, e)
      if (ev === 'finished' || ev === 'rolled back') {
        ended.add(e.run)
        for (const r of e.accounted ?? []) ended.add(r)
      }
    }
  }
  const out: UnfinishedRun[] = []
  for (const [run, s] of started) {
    if (ended.has(run) || run === exceptRun) continue
    const releases = new Set<string>()
    const switched: string[] = []
    for (const [host, lines] of linesByHost) {
      const moves = lines.filter((e) => e.run === run && eventOf(e) === 'switched')
      for (const m of moves) if (m.to && !m.back) releases.add(m.to)
      if (moves.length > 0 && (moves[0]!.from ?? null) !== (moves.at(-1)!.to ?? null)) switched.push(host)
    }
    out.push({run, who: s.who, at: s.at, action: s.action, releases: [...releases].sort(), switched: switched.sort()})
  }
  return out.sort((a, b) => a.at.localeCompare(b.at))
}

/** A release a host ran, in order, with the run that moved it off that release (if one did). */
interface Ran {
  release: string
  /** The change that came after it: "deploy R by who at T". */
  leftBy?: string
}

/** The releases one host ran, oldest first, from its audit lines (switched lines; ends of older runs). */
export function releasesRan(host: string, lines: readonly AuditEntry[]): Ran[] {
  const seq: Ran[] = []
  const push = (release: string | null | undefined, by: string) => {
    if (!release) return
    const last = seq.at(-1)
    if (last?.release === release) return
    if (last) last.leftBy = by
    seq.push({release})
  }
  const byRun = new Map<string, AuditEntry[]>()
  const order: (string | AuditEntry)[] = []
  for (const e of lines) {
    if (eventOf(e) === 'switched' && e.run) {
      if (!byRun.has(e.run)) {
        byRun.set(e.run, [])
        order.push(e.run)
      }
      byRun.get(e.run)!.push(e)
    } else if (!e.event && e.hosts[host] === 'updated') {
      // A line from before events existed: the host ran that release after this run.
      order.push(e)
    }
  }
  for (const item of order) {
    if (typeof item === 'string') {
      const moves = byRun.get(item)!
      const first = moves[0]!
      const last = moves.at(-1)!
      const by = `${first.action} ${item} by ${first.who} at ${first.at}`
      push(first.from, by)
      push(last.to, by)
    } else {
      push(item.release, `${item.action} of ${item.release} by ${item.who} at ${item.at}`)
    }
  }
  return seq
}

export type Target = {release: string; source: string} | {release: null; why: string}

/**
 * Where `rollback` sends a host: the newest release in its history before the one it runs that is not
 * marked (bad, abandoned, rolled away from: `excluded`), is still on the host, and is not what it runs.
 */
export function rollbackTarget(host: string, lines: readonly AuditEntry[], h: {current: string | null; present: readonly string[]; excluded: ReadonlySet<string>}): Target {
  const seq = releasesRan(host, lines)
  if (seq.length === 0) return {release: null, why: 'its audit log records no release it ran'}
  const skipped: string[] = []
  for (let i = seq.length - 1; i >= 0; i--) {
    const r = seq[i]!
    if (r.release === h.current) continue
    if (h.excluded.has(r.release)) {
      skipped.push(`${r.release} (marked)`)
      continue
    }
    if (!h.present.includes(r.release)) {
      skipped.push(`${r.release} (no longer on the host)`)
      continue
    }
    return {release: r.release, source: `ran before ${r.leftBy ?? 'the last change'}${skipped.length > 0 ? `; skipped ${skipped.join(', ')}` : ''}`}
  }
  return {release: null, why: `no release it ran before ${h.current ?? '(none)'} is left to go back to${skipped.length > 0 ? ` (${skipped.join(', ')})` : ''}`}
}
