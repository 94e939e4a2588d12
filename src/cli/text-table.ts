import {printable} from './escape.js'

/**
 * Left-aligned columns, two spaces apart, no borders and no trailing spaces: output that greps, diffs
 * and reads well in cron mail. Every table feedops prints goes through here. Cells often hold text from
 * hosts or the inventory, so control characters in them are shown escaped (they would also break the
 * alignment).
 */
export function textTable(header: readonly string[], rawRows: readonly (readonly string[])[]): string {
  const rows = rawRows.map((r) => r.map((c) => printable(c)))
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n') + '\n'
}
