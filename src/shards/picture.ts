import {formatBytes} from './render.js'

/**
 * The picture of a shard map or a plan: one bar per physical server for its logical shards and one for
 * its bytes; a plan has two per server (before and after). The same data goes to --json, to the terminal
 * (drawPicture) and to an SVG (picture-svg.ts).
 */
export type MetricName = 'shards' | 'bytes'

export interface PictureMetric {
  metric: MetricName
  /** The largest value of this metric in the picture: every bar of it is drawn to this scale. */
  max: number
  servers: {server: string; values: number[]; note?: string}[]
}

export interface Picture {
  /** What the values of each server are: ['now'] for a map, ['before', 'after'] for a plan. */
  series: string[]
  metrics: PictureMetric[]
}

export interface ServerPoint {
  server: string
  shards: number
  bytes: number | null
  note?: string
}

/** A picture from one point per server per series (a map: one series; a plan: before and after). */
export function picture(series: string[], points: ServerPoint[][]): Picture {
  const servers = points[0]?.map((p) => p.server) ?? []
  const metric = (m: MetricName): PictureMetric => {
    const rows = servers.map((server, i) => ({
      server,
      values: points.map((ps) => Math.max(0, ps[i]?.[m] ?? 0)),
      ...(points.some((ps) => ps[i]?.note) ? {note: points.map((ps) => ps[i]?.note).find(Boolean)} : {}),
    }))
    return {metric: m, max: Math.max(0, ...rows.flatMap((r) => r.values)), servers: rows}
  }
  return {series, metrics: [metric('shards'), metric('bytes')]}
}

export interface DrawOptions {
  /** Block characters on a terminal; '#' and '.' otherwise (logs, files, snapshot tests). */
  unicode: boolean
  /** Characters of a full bar. */
  width?: number
}

const TITLES: Record<MetricName, string> = {shards: 'logical shards', bytes: 'bytes'}

export function formatValue(metric: MetricName, v: number): string {
  return metric === 'bytes' ? formatBytes(v) : String(v)
}

/** Bar length for `v` on a scale of `max`: at least one character for any value above zero. */
export function barLength(v: number, max: number, width: number): number {
  if (max <= 0 || v <= 0) return 0
  return Math.max(1, Math.round((v / max) * width))
}

/** The picture as lines of text, one block per metric. */
export function drawPicture(p: Picture, opts: DrawOptions): string {
  const width = opts.width ?? 40
  const [full, empty] = opts.unicode ? ['█', '░'] : ['#', '.']
  const nameWidth = Math.max(...p.metrics.flatMap((m) => m.servers.map((s) => s.server.length)), 0)
  const seriesWidth = p.series.length > 1 ? Math.max(...p.series.map((s) => s.length)) : 0
  const out: string[] = []
  for (const m of p.metrics) {
    out.push(`${TITLES[m.metric]}${p.series.length > 1 ? ` (${p.series.join(' → ')})` : ''}`)
    for (const s of m.servers) {
      s.values.forEach((v, i) => {
        const n = barLength(v, m.max, width)
        const name = i === 0 ? s.server.padEnd(nameWidth) : ' '.repeat(nameWidth)
        const label = seriesWidth ? ` ${p.series[i]!.padEnd(seriesWidth)}` : ''
        const note = i === 0 && s.note ? `  (${s.note})` : ''
        out.push(`  ${name}${label} ${full.repeat(n)}${empty.repeat(width - n)} ${formatValue(m.metric, v)}${note}`)
      })
    }
  }
  return out.join('\n')
}
