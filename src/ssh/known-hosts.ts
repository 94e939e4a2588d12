import {createHash, createHmac, randomBytes} from 'node:crypto'
import {appendFile, mkdir, readFile} from 'node:fs/promises'
import path from 'node:path'

import {errorText, UserError} from '../errors.js'

/**
 * OpenSSH known_hosts: plain entries (comma-separated patterns with `*`, `?` and `!negation`), hashed
 * entries (`|1|base64 salt|base64 HMAC-SHA1(salt, name)`), `[host]:port` names for ports other than 22,
 * `@revoked` keys (refused) and `@cert-authority` lines (never trusted: feedops does not do host certificates).
 */

export interface KnownHostEntry {
  /** 1-based line number in the file. */
  line: number
  text: string
  marker?: 'revoked' | 'cert-authority'
  /** Plain patterns; empty for a hashed entry. */
  patterns: string[]
  hashed?: {salt: Buffer; hash: Buffer}
  keyType: string
  /** The raw key blob (what the base64 field decodes to, and what ssh2 hands to hostVerifier). */
  key: Buffer
}

export type HostKeyCheck =
  | {status: 'trusted'; entry: KnownHostEntry}
  | {status: 'changed'; entries: KnownHostEntry[]}
  | {status: 'revoked'; entry: KnownHostEntry}
  | {status: 'unknown'}

/** The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim()
    if (raw === '' || raw.startsWith('#')) continue
    const fields = raw.split(/\s+/)
    let marker: KnownHostEntry['marker']
    if (fields[0]!.startsWith('@')) {
      const m = fields.shift()!
      if (m === '@revoked') marker = 'revoked'
      else if (m === '@cert-authority') marker = 'cert-authority'
      else continue // unknown marker: skip the line rather than trust it
    }
    const [hosts, keyType, b64] = fields
    if (!hosts || !keyType || !b64 || !/^[A-Za-z0-9+/]+=*$/.test(b64)) continue
    const key = Buffer.from(b64, 'base64')
    if (key.length < 8 || keyTypeOf(key) !== keyType) continue
    const entry: KnownHostEntry = {line: i + 1, text: raw, patterns: [], keyType, key}
    if (marker) entry.marker = marker
    if (hosts.startsWith('|1|')) {
      const [, , salt, hash] = hosts.split('|')
      if (!salt || !hash) continue
      entry.hashed = {salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64')}
    } else {
      entry.patterns = hosts.split(',').filter((p) => p !== '')
    }
    entries.push(entry)
  }
  return entries
}

/** The key type named inside an SSH public key blob (string length + string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return ''
  const len = blob.readUInt32BE(0)
  if (len > 64 || 4 + len > blob.length) return ''
  return blob.subarray(4, 4 + len).toString('latin1')
}

/** `SHA256:…` as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')
}

function entryMatches(entry: KnownHostEntry, name: string): boolean {
  if (entry.hashed) {
    const digest = createHmac('sha1', entry.hashed.salt).update(name).digest()
    return digest.equals(entry.hashed.hash)
  }
  let matched = false
  for (const p of entry.patterns) {
    const negated = p.startsWith('!')
    if (globMatch(negated ? p.slice(1) : p, name)) {
      if (negated) return false
      matched = true
    }
  }
  return matched
}

function globMatch(pattern: string, name: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern.toLowerCase() === name.toLowerCase()
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  return new RegExp(`^${re}$`, 'i').test(name)
}

export function checkHostKey(entries: readonly KnownHostEntry[], host: string, port: number, key: Buffer): HostKeyCheck {
  const name = knownHostName(host, port)
  const forHost = entries.filter((e) => e.marker !== 'cert-authority' && entryMatches(e, name))
  const revoked = entries.find((e) => e.marker === 'revoked' && e.key.equals(key))
  if (revoked) return {status: 'revoked', entry: revoked}
  const trusted = forHost.find((e) => !e.marker && e.key.equals(key))
  if (trusted) return {status: 'trusted', entry: trusted}
  const others = forHost.filter((e) => !e.marker)
  if (others.length > 0) return {status: 'changed', entries: others}
  return {status: 'unknown'}
}

/** Key types known for a host, so the handshake can ask for one of those first (as OpenSSH does). */
function knownKeyTypes(entries: readonly KnownHostEntry[], host: string, port: number): string[] {
  const name = knownHostName(host, port)
  return [...new Set(entries.filter((e) => !e.marker && entryMatches(e, name)).map((e) => e.keyType))]
}

export function formatKnownHostLine(host: string, port: number, key: Buffer, opts: {hashed: boolean}): string {
  const name = knownHostName(host, port)
  const keyField = `${keyTypeOf(key)} ${key.toString('base64')}`
  if (!opts.hashed) return `${name} ${keyField}`
  const salt = randomBytes(20)
  const hash = createHmac('sha1', salt).update(name).digest()
  return `|1|${salt.toString('base64')}|${hash.toString('base64')} ${keyField}`
}

/** A known_hosts file loaded once per invocation and shared by every connection. */
export class KnownHosts {
  private appending: Promise<void> = Promise.resolve()
  private lineCount: number
  private endsWithNewline: boolean
  private entries: KnownHostEntry[]

  private constructor(
    readonly file: string,
    text: string,
  ) {
    this.entries = parseKnownHosts(text)
    this.lineCount = text === '' ? 0 : text.replace(/\n$/, '').split('\n').length
    this.endsWithNewline = text === '' || text.endsWith('\n')
  }

  /** A missing file is an empty one (every host is then unknown); a directory or an unreadable file is a config error. */
  static async load(file: string): Promise<KnownHosts> {
    let text = ''
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT') {
        const what = code === 'EISDIR' ? 'is a directory, not a known_hosts file' : `cannot be read (${code ?? errorText(err)})`
        throw new UserError(`The known_hosts file (ssh.knownHosts) ${file} ${what}.`, {
          fix: 'Point ssh.knownHosts in feedops.yml at a file (a missing one is created by --accept-new).',
          cause: err,
        })
      }
    }
    return new KnownHosts(file, text)
  }

  static fromText(file: string, text: string): KnownHosts {
    return new KnownHosts(file, text)
  }

  get all(): readonly KnownHostEntry[] {
    return this.entries
  }

  check(host: string, port: number, key: Buffer): HostKeyCheck {
    return checkHostKey(this.entries, host, port, key)
  }

  keyTypes(host: string, port: number): string[] {
    return knownKeyTypes(this.entries, host, port)
  }

  /** New entries are hashed when most of the file already is (like HashKnownHosts). */
  get hashesNames(): boolean {
    const hashed = this.entries.filter((e) => e.hashed).length
    return hashed > 0 && hashed * 2 >= this.entries.length
  }

  /** Appends a first-seen key (accept-new); appends are serialized so concurrent hosts never interleave. */
  add(host: string, port: number, key: Buffer): Promise<void> {
    const run = this.appending.then(async () => {
      if (checkHostKey(this.entries, host, port, key).status === 'trusted') return
      const line = formatKnownHostLine(host, port, key, {hashed: this.hashesNames})
      await mkdir(path.dirname(this.file), {recursive: true, mode: 0o700})
      await appendFile(this.file, `${this.endsWithNewline ? '' : '\n'}${line}\n`, {mode: 0o600})
      this.endsWithNewline = true
      this.lineCount++
      this.entries = [...this.entries, ...parseKnownHosts(line).map((e) => ({...e, line: this.lineCount}))]
    })
    this.appending = run.catch(() => {})
    return run
  }
}
