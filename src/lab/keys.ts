import {generateKeyPairSync, randomBytes} from 'node:crypto'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'

/**
 * ed25519 keys for the lab (one host key per sshd, one client key), made in-process: 48 hosts
 * would otherwise mean 48 ssh-keygen runs on every fresh lab. Written in OpenSSH's own
 * "openssh-key-v1" format (unencrypted), which sshd, ssh and ssh-keygen read.
 * (ssh2's generator is not used: it drops a leading zero byte of the key now and then, and
 * OpenSSH then refuses the file.)
 */

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

function sshString(data: Buffer | string): Buffer {
  const buf = typeof data === 'string' ? Buffer.from(data) : data
  return Buffer.concat([u32(buf.length), buf])
}

export function generateEd25519(comment: string): {private: string; public: string} {
  const {publicKey, privateKey} = generateKeyPairSync('ed25519')
  const pub = Buffer.from(publicKey.export({format: 'jwk'}).x!, 'base64url')
  const seed = Buffer.from(privateKey.export({format: 'jwk'}).d!, 'base64url')
  const pubBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)])
  const check = randomBytes(4)
  let secret = Buffer.concat([check, check, pubBlob, sshString(Buffer.concat([seed, pub])), sshString(comment)])
  const pad = (8 - (secret.length % 8)) % 8
  secret = Buffer.concat([secret, Buffer.from(Array.from({length: pad}, (_, i) => i + 1))])
  const blob = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    u32(1),
    sshString(pubBlob),
    sshString(secret),
  ])
  const body = blob.toString('base64').replace(/.{1,70}/g, '$&\n')
  return {
    private: `-----BEGIN OPENSSH PRIVATE KEY-----\n${body}-----END OPENSSH PRIVATE KEY-----\n`,
    public: `ssh-ed25519 ${pubBlob.toString('base64')} ${comment}`,
  }
}

/**
 * Creates an ed25519 key pair at `file` (+ .pub) unless one is already there, and returns the
 * public key line. Existing keys are kept so known_hosts stays valid across `lab up`s.
 */
export function ensureEd25519Key(file: string, comment: string): string {
  if (!existsSync(file) || !existsSync(`${file}.pub`)) {
    const pair = generateEd25519(comment)
    writeFileSync(file, pair.private, {mode: 0o600})
    writeFileSync(`${file}.pub`, `${pair.public}\n`, {mode: 0o644})
  }
  return readFileSync(`${file}.pub`, 'utf8').trim()
}

/** `[127.N.1.K]:2222 ssh-ed25519 AAAA…` (no comment), the form OpenSSH looks up for non-22 ports. */
export function knownHostsLine(address: string, port: number, publicKey: string): string {
  const [type, key] = publicKey.split(/\s+/)
  const host = port === 22 ? address : `[${address}]:${port}`
  return `${host} ${type} ${key}`
}
