import {execFile} from 'node:child_process'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {promisify} from 'node:util'

const run = promisify(execFile)

/**
 * Creates an ed25519 key pair at `file` (+ .pub) with ssh-keygen unless one is already there, and
 * returns the public key line. Existing keys are kept so known_hosts stays valid across `lab up`s.
 */
export async function ensureEd25519Key(file: string, comment: string): Promise<string> {
  if (!existsSync(file)) {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file])
  } else if (!existsSync(`${file}.pub`)) {
    const {stdout} = await run('ssh-keygen', ['-y', '-f', file])
    writeFileSync(`${file}.pub`, stdout)
  }
  return readFileSync(`${file}.pub`, 'utf8').trim()
}

/** `[127.N.1.K]:2222 ssh-ed25519 AAAA…` (no comment), the form OpenSSH looks up for non-22 ports. */
export function knownHostsLine(address: string, port: number, publicKey: string): string {
  const [type, key] = publicKey.split(/\s+/)
  const host = port === 22 ? address : `[${address}]:${port}`
  return `${host} ${type} ${key}`
}
