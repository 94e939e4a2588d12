import {StringDecoder} from 'node:string_decoder'

import {printable} from '../cli/escape.js'

/**
 * Longest line held back waiting for its newline. A longer line is written in prefixed pieces of about
 * this size, so a host printing one endless line costs bounded memory and linear time, and its output
 * still never mixes with another host's mid-line.
 */
export const MAX_PENDING_CHARS = 1 << 20

/**
 * Turns a host's output chunks into whole lines prefixed by the host name (`app3 | …`), so lines of
 * different hosts never mix mid-line. A last line without a newline is written by `flush()`.
 *
 * Only each new chunk is searched for a newline; text before it is kept as a list of parts and joined
 * once, when its line is written (searching and re-concatenating all pending text on every chunk made
 * a 40 MB line without newlines take 84 s).
 */
export class PrefixedLines {
  private readonly decoder = new StringDecoder('utf8')
  private pending: string[] = []
  private pendingChars = 0

  constructor(
    private readonly prefix: string,
    private readonly write: (text: string) => void,
  ) {}

  /** Characters held back waiting for a newline (at most about MAX_PENDING_CHARS plus one chunk). */
  get pendingLength(): number {
    return this.pendingChars
  }

  push(chunk: Buffer | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk)
    const end = text.lastIndexOf('\n')
    if (end === -1) {
      this.hold(text)
      return
    }
    this.write(prefixLines(this.take() + text.slice(0, end), this.prefix))
    this.hold(text.slice(end + 1))
  }

  flush(): void {
    this.hold(this.decoder.end())
    const rest = this.take()
    if (rest !== '') this.write(prefixLines(rest, this.prefix))
  }

  private hold(text: string): void {
    if (text === '') return
    this.pending.push(text)
    this.pendingChars += text.length
    if (this.pendingChars >= MAX_PENDING_CHARS) this.write(prefixLines(this.take(), this.prefix))
  }

  private take(): string {
    const text = this.pending.length === 1 ? this.pending[0]! : this.pending.join('')
    this.pending = []
    this.pendingChars = 0
    return text
  }
}

/**
 * Each line of `text` (without its final newline) prefixed, newline-terminated; a CRLF ending is dropped
 * and any other control character shown escaped (tabs kept), so no line can pass for another host's.
 */
export function prefixLines(text: string, prefix: string): string {
  return text
    .split('\n')
    .map((l) => `${prefix}${printable(l.endsWith('\r') ? l.slice(0, -1) : l, '\t')}\n`)
    .join('')
}
