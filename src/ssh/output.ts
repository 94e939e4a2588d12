import {StringDecoder} from 'node:string_decoder'

/**
 * Turns a host's output chunks into whole lines prefixed by the host name (`app3 | …`), so lines of
 * different hosts never mix mid-line. A last line without a newline is written by `flush()`.
 */
export class PrefixedLines {
  private readonly decoder = new StringDecoder('utf8')
  private pending = ''

  constructor(
    private readonly prefix: string,
    private readonly write: (text: string) => void,
  ) {}

  push(chunk: Buffer | string): void {
    const text = this.pending + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk))
    const end = text.lastIndexOf('\n')
    if (end === -1) {
      this.pending = text
      return
    }
    this.pending = text.slice(end + 1)
    this.write(prefixLines(text.slice(0, end), this.prefix))
  }

  flush(): void {
    const rest = this.pending + this.decoder.end()
    this.pending = ''
    if (rest !== '') this.write(prefixLines(rest, this.prefix))
  }
}

/** Each line of `text` (without its final newline) prefixed, newline-terminated. */
export function prefixLines(text: string, prefix: string): string {
  return text
    .split('\n')
    .map((l) => `${prefix}${l.endsWith('\r') ? l.slice(0, -1) : l}\n`)
    .join('')
}
