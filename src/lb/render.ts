import {printable} from '../cli/escape.js'
import {textTable} from '../cli/text-table.js'
import type {DrainResult, RestoreResult} from './drain.js'
import type {ActionReport, NodeReport, PassResult} from './pass.js'
import type {Member} from './provider.js'

/** Everything `lb` prints for people; --json prints the same results as data. */

export interface StatusResult {
  lb: string
  nodes: NodeReport[]
  /** Members the inventory does not know. */
  unknown: Member[]
  panic: boolean
  warnings: string[]
}

const probeCell = (n: NodeReport) => (n.probe.ok ? `ok ${n.probe.ms}ms` : `FAIL ${n.probe.error ?? ''}`.trim())

function elbCell(m: Member | undefined): string {
  if (!m) return 'not registered'
  return m.rawState === m.state ? m.state : `${m.state} (${m.rawState})`
}

function reasonCell(m: Member | undefined): string {
  if (!m) return '-'
  return [m.reasonCode, m.description].filter(Boolean).join(': ') || '-'
}

const countsCell = (n: NodeReport) => `${n.counts.passes} pass / ${n.counts.fails} fail`
const drainCell = (n: NodeReport) => (n.drain ? `by ${n.drain.by} at ${n.drain.at}: ${n.drain.why}` : '-')

/** One line per node (and per unknown target, marked), then the warnings. */
export function renderStatus(s: StatusResult): string {
  const rows = s.nodes.map((n) => [n.name, n.id, probeCell(n), elbCell(n.elb), reasonCell(n.elb), countsCell(n), n.decision === 'drained' ? 'drained' : nextCell(n), drainCell(n)])
  for (const m of s.unknown) rows.push(['(unknown)', m.id, '-', elbCell(m), reasonCell(m), '-', 'NOT IN INVENTORY, left alone', '-'])
  const out = [`${s.lb}`, textTable(['NODE', 'ID', 'DEEP PROBE', 'ELB', 'ELB REASON', 'KEPT', 'NEXT PASS', 'DRAINED BY HAND'], rows).trimEnd()]
  for (const w of s.warnings) out.push(`WARNING: ${printable(w)}`)
  return `${out.join('\n')}\n`
}

function nextCell(n: NodeReport): string {
  switch (n.decision) {
    case 'deregister':
      return 'deregister'
    case 'register':
      return 'register'
    case 'held':
      return 'kept in (guard)'
    case 'out':
      return 'stays out'
    default:
      return 'stays in'
  }
}

/** One line per action, as it completes. */
export function actionLine(a: ActionReport, dryRun: boolean): string {
  const verb = a.action === 'register' ? (dryRun ? 'would register' : 'registered') : dryRun ? 'would deregister' : 'deregistered'
  if (!a.ok) return printable(`FAILED to ${a.action} ${a.node} (${a.id}): ${a.error ?? 'failed'}`)
  const drain =
    a.drainedS === undefined ? '' : a.drainComplete ? (a.drainedS > 0 ? `; draining over in ${a.drainedS} s` : '') : `; draining not waited out (stopped after ${a.drainedS} s)`
  return printable(`${verb} ${a.node} (${a.id}): ${a.why}${drain}`)
}

/** A rotate pass: its warnings, one line per action, one summary line. */
export function renderPass(r: PassResult, opts: {actionsPrinted?: boolean} = {}): string {
  const lines: string[] = []
  for (const w of r.warnings) lines.push(r.panic ? `WARNING: ${printable(w)}` : `warning: ${printable(w)}`)
  if (!opts.actionsPrinted) for (const a of r.actions) lines.push(actionLine(a, r.dryRun))
  lines.push(printable(r.summary))
  return `${lines.join('\n')}\n`
}

export function renderDrain(d: DrainResult): string {
  // --force below minInService is said on stderr by the command, so it reaches a log even with --json.
  const lines: string[] = []
  if (d.deregistered) {
    const drain = d.drainComplete ? (d.drainedS > 0 ? ` after ${d.drainedS} s of connection draining` : '') : ` (draining not waited out: stopped after ${d.drainedS} s)`
    lines.push(`${d.node} (${d.id}) drained out of ${d.lb}${drain}; rotate leaves it out until \`feedops lb restore ${d.node}\`.`)
  } else {
    lines.push(`${d.node} (${d.id}) was not registered at ${d.lb}; marked drained by hand, so rotate leaves it out until \`feedops lb restore ${d.node}\`.`)
  }
  return `${printable(lines.join('\n'))}\n`
}

export function renderRestore(r: RestoreResult): string {
  const lifted = r.lifted ? `drain by ${r.lifted.by} (${r.lifted.why}) lifted` : 'was not drained by hand'
  const what = r.registered
    ? `registered at ${r.lb}`
    : r.alreadyRegistered
      ? `already registered at ${r.lb}`
      : `left out: its probe failed (${r.probe.error ?? 'failed'}); rotate registers it after it passes`
  return `${printable(`${r.node} (${r.id}): ${lifted}; ${what}.`)}\n`
}
