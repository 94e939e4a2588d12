import {barLength, formatValue, type Picture} from './picture.js'

/**
 * The picture as a standalone SVG document (for a wiki page or a ticket): a block per metric, a bar per
 * server and series, the value at its end. Text is XML-escaped; server names come from the config.
 */
const ROW = 18
const BAR = 12
const LEFT = 150
const WIDTH = 360
const COLOURS = ['#4c78a8', '#f58518', '#54a24b']
const TITLES = {shards: 'logical shards', bytes: 'bytes'} as const

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({'<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;'})[c]!)
}

export function pictureSvg(p: Picture, title: string): string {
  const parts: string[] = []
  let y = 28
  parts.push(`<text x="8" y="18" font-weight="bold">${escapeXml(title)}</text>`)
  if (p.series.length > 1) {
    p.series.forEach((s, i) => {
      const x = LEFT + i * 110
      parts.push(`<rect x="${x}" y="${y}" width="10" height="10" fill="${COLOURS[i % COLOURS.length]}"/>`)
      parts.push(`<text x="${x + 14}" y="${y + 9}">${escapeXml(s)}</text>`)
    })
    y += ROW
  }
  for (const m of p.metrics) {
    y += 6
    parts.push(`<text x="8" y="${y + 12}" font-weight="bold">${TITLES[m.metric]}</text>`)
    y += ROW
    for (const s of m.servers) {
      parts.push(`<text x="16" y="${y + BAR - 2}">${escapeXml(s.server)}${s.note ? ` (${escapeXml(s.note)})` : ''}</text>`)
      s.values.forEach((v, i) => {
        const w = barLength(v, m.max, WIDTH)
        parts.push(`<rect x="${LEFT}" y="${y}" width="${w}" height="${BAR}" fill="${COLOURS[i % COLOURS.length]}"><title>${escapeXml(`${s.server} ${p.series[i]}: ${formatValue(m.metric, v)}`)}</title></rect>`)
        parts.push(`<text x="${LEFT + w + 4}" y="${y + BAR - 2}">${escapeXml(formatValue(m.metric, v))}</text>`)
        y += ROW
      })
      y += 2
    }
  }
  const height = y + 8
  const width = LEFT + WIDTH + 90
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n')
}
