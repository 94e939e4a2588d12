/**
 * Text from hosts (command output, errors) and from the inventory (EC2 tags) may hold control
 * characters: a newline or carriage return forges a line of another host, an ANSI escape drives the
 * terminal. Everything such text passes through on its way to a person goes through `printable`:
 * C0 controls, DEL and C1 controls become visible escapes (\r, \e[31m → \x1b[31m, \u009b), except
 * the characters named in `keep` (e.g. '\t' for command output split into lines).
 */
export function printable(text: string, keep = ''): string {
  // Fast path: most text has nothing to escape.
  if (!CONTROL.test(text)) return text
  return text.replace(CONTROL_ALL, (c) => (keep.includes(c) ? c : escapeChar(c)))
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/
// eslint-disable-next-line no-control-regex
const CONTROL_ALL = /[\u0000-\u001f\u007f-\u009f]/g

const NAMED: Record<string, string> = {'\n': '\\n', '\r': '\\r', '\t': '\\t'}

function escapeChar(c: string): string {
  const code = c.charCodeAt(0)
  return NAMED[c] ?? (code < 0x80 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`)
}
