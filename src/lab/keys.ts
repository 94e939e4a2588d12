import {createPrivateKey, createPublicKey, randomBytes} from 'node:crypto'
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

/**
 * An ed25519 private key is 32 random bytes (the seed); Node derives the public key from it. The key is
 * not made with generateKeyPairSync + export({format: 'jwk'}): on Node 20 that deadlocks now and then
 * (a GC during the export runs the finished key-generation job's destructor, which takes the lock the
 * export holds), and a lab or a test run hangs for good.
 */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex') // PKCS#8 wrapping of a 32-byte seed
const SPKI_ED25519_PREFIX_BYTES = 12 // SubjectPublicKeyInfo header before the 32-byte public key

export function generateEd25519(comment: string): {private: string; public: string} {
  const seed = randomBytes(32)
  const privateKey = createPrivateKey({key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8'})
  const pub = createPublicKey(privateKey).export({format: 'der', type: 'spki'}).subarray(SPKI_ED25519_PREFIX_BYTES)
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
