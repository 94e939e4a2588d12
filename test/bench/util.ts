import {readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

/** The repository root (benchmarks run from dist/test/bench). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

/** A plain text table with right-aligned numbers. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) =>
    cells.map((c, i) => (/^[\d.,× -]+$/.test(c) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd()
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

/** The machine's busy and idle CPU ticks so far (all cores), from /proc/stat. */
function cpuTicks(): {busy: number; idle: number} {
  const [, user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number)
  return {busy: user! + nice! + system! + irq! + softirq! + steal!, idle: idle! + iowait!}
}

/**
 * Waits until the machine's CPU was less than `belowPct` busy over one second (at most `maxMs`), so that a
 * timed run does not start in the tail of the one before (old processes exiting, the lab settling). Says how
 * long it waited and how busy the last second was.
 */
export async function settle(belowPct = 20, maxMs = 20_000): Promise<{waitedMs: number; busyPct: number}> {
  const started = performance.now()
  for (;;) {
    const a = cpuTicks()
    await new Promise((r) => setTimeout(r, 1000))
    const b = cpuTicks()
    const busyPct = (100 * (b.busy - a.busy)) / Math.max(1, b.busy - a.busy + b.idle - a.idle)
    const waitedMs = performance.now() - started
    if (busyPct < belowPct || waitedMs >= maxMs) return {waitedMs, busyPct}
  }
}
