import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'

import {
  checkHostKey,
  fingerprint,
  formatKnownHostLine,
  KnownHosts,
  knownHostName,
  parseKnownHosts,
} from '../../src/ssh/known-hosts.js'

const dir = mkdtempSync(path.join(tmpdir(), 'feedops-kh-'))

/** A real ed25519 public key made by ssh-keygen: [type, base64, blob]. */
function newKey(name: string): {line: string; blob: Buffer} {
  const file = path.join(dir, name)
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file])
  const [type, b64] = readFileSync(`${file}.pub`, 'utf8').trim().split(' ')
  return {line: `${type} ${b64}`, blob: Buffer.from(b64!, 'base64')}
}

const a = newKey('a')
const b = newKey('b')
const c = newKey('c')

describe('known_hosts', () => {
  it('names hosts like OpenSSH: bare on port 22, [host]:port otherwise', () => {
    assert.equal(knownHostName('10.0.0.1', 22), '10.0.0.1')
    assert.equal(knownHostName('127.0.1.3', 2222), '[127.0.1.3]:2222')
  })

  it('parses plain, bracketed, listed, marked and commented lines and skips junk', () => {
    const text = [
      '# a comment',
      '',
      `web1,10.0.0.1 ${a.line} comment here`,
      `[127.0.1.3]:2222 ${b.line}`,
      `@revoked * ${c.line}`,
      `@cert-authority *.example.com ${c.line}`,
      `@weird host ${a.line}`,
      'host ssh-ed25519 not-base64!',
      `host ssh-rsa ${a.line.split(' ')[1]}`, // type does not match the blob
      'truncated-line',
    ].join('\n')
    const entries = parseKnownHosts(text)
    assert.deepEqual(
      entries.map((e) => [e.line, e.marker ?? '', e.patterns.join(',')]),
      [
        [3, '', 'web1,10.0.0.1'],
        [4, '', '[127.0.1.3]:2222'],
        [5, 'revoked', '*'],
        [6, 'cert-authority', '*.example.com'],
      ],
    )
    assert.equal(entries[0]!.keyType, 'ssh-ed25519')
    assert.ok(entries[0]!.key.equals(a.blob))
  })

  it('trusts a matching key, reports a changed key with its line, and an unknown host', () => {
    const entries = parseKnownHosts(`web1,10.0.0.1 ${a.line}\n[127.0.1.3]:2222 ${b.line}\n`)
    assert.equal(checkHostKey(entries, '10.0.0.1', 22, a.blob).status, 'trusted')
    assert.equal(checkHostKey(entries, 'WEB1', 22, a.blob).status, 'trusted')
    assert.equal(checkHostKey(entries, '127.0.1.3', 2222, b.blob).status, 'trusted')
    const changed = checkHostKey(entries, '127.0.1.3', 2222, a.blob)
    assert.equal(changed.status, 'changed')
    assert.equal(changed.status === 'changed' && changed.entries[0]!.line, 2)
    // The same address on another port is another host.
    assert.equal(checkHostKey(entries, '127.0.1.3', 22, b.blob).status, 'unknown')
    assert.equal(checkHostKey(entries, '10.0.0.1', 2222, a.blob).status, 'unknown')
  })

  it('matches wildcards and honours negation', () => {
    const entries = parseKnownHosts(`10.0.*,!10.0.0.9 ${a.line}\n[app?]:2222 ${b.line}\n`)
    assert.equal(checkHostKey(entries, '10.0.3.4', 22, a.blob).status, 'trusted')
    assert.equal(checkHostKey(entries, '10.0.0.9', 22, a.blob).status, 'unknown')
    assert.equal(checkHostKey(entries, 'app7', 2222, b.blob).status, 'trusted')
    assert.equal(checkHostKey(entries, 'app17', 2222, b.blob).status, 'unknown')
  })

  it('refuses a revoked key even when another line trusts it, and never trusts a cert-authority line', () => {
    const entries = parseKnownHosts(`host1 ${a.line}\n@revoked * ${a.line}\n@cert-authority * ${b.line}\n`)
    assert.equal(checkHostKey(entries, 'host1', 22, a.blob).status, 'revoked')
    assert.equal(checkHostKey(entries, 'host2', 22, b.blob).status, 'unknown')
  })

  it('reads entries hashed by ssh-keygen -H, for port 22 and [host]:port', () => {
    const file = path.join(dir, 'hashed')
    writeFileSync(file, `10.1.2.3 ${a.line}\n[127.0.1.5]:2222 ${b.line}\n`)
    execFileSync('ssh-keygen', ['-H', '-f', file], {stdio: 'ignore'})
    const text = readFileSync(file, 'utf8')
    assert.match(text, /^\|1\|/)
    assert.doesNotMatch(text, /127\.0\.1\.5/)
    const entries = parseKnownHosts(text)
    assert.ok(entries.every((e) => e.hashed))
    assert.equal(checkHostKey(entries, '10.1.2.3', 22, a.blob).status, 'trusted')
    assert.equal(checkHostKey(entries, '127.0.1.5', 2222, b.blob).status, 'trusted')
    assert.equal(checkHostKey(entries, '127.0.1.5', 2222, c.blob).status, 'changed')
    assert.equal(checkHostKey(entries, '127.0.1.5', 22, b.blob).status, 'unknown')
    assert.equal(checkHostKey(entries, '127.0.1.6', 2222, b.blob).status, 'unknown')
  })

  it('writes hashed lines ssh-keygen -F can find', () => {
    const file = path.join(dir, 'ours')
    writeFileSync(file, formatKnownHostLine('127.0.1.9', 2222, c.blob, {hashed: true}) + '\n')
    const found = execFileSync('ssh-keygen', ['-F', '[127.0.1.9]:2222', '-f', file], {encoding: 'utf8'})
    assert.match(found, /Host \[127\.0\.1\.9\]:2222 found/)
    assert.equal(formatKnownHostLine('h', 22, c.blob, {hashed: false}), `h ${c.line}`)
  })

  it('prints fingerprints like ssh-keygen -l', () => {
    const out = execFileSync('ssh-keygen', ['-l', '-f', path.join(dir, 'a.pub')], {encoding: 'utf8'})
    assert.ok(out.includes(fingerprint(a.blob)), `${out} should include ${fingerprint(a.blob)}`)
  })

  it('appends first-seen keys hashed like the file, one whole line each, even when added at once', async () => {
    const plainFile = path.join(dir, 'plain_kh')
    writeFileSync(plainFile, `host0 ${a.line}`) // no trailing newline
    const plain = await KnownHosts.load(plainFile)
    await Promise.all([plain.add('127.0.1.1', 2222, b.blob), plain.add('127.0.1.2', 2222, c.blob), plain.add('127.0.1.1', 2222, b.blob)])
    const lines = readFileSync(plainFile, 'utf8').split('\n')
    assert.deepEqual(lines, [`host0 ${a.line}`, `[127.0.1.1]:2222 ${b.line}`, `[127.0.1.2]:2222 ${c.line}`, ''])
    assert.equal(plain.check('127.0.1.2', 2222, c.blob).status, 'trusted')
    const reread = await KnownHosts.load(plainFile)
    assert.equal(reread.check('127.0.1.1', 2222, b.blob).status, 'trusted')

    const hashedFile = path.join(dir, 'hashed_kh')
    writeFileSync(hashedFile, formatKnownHostLine('x', 22, a.blob, {hashed: true}) + '\n')
    const hashed = await KnownHosts.load(hashedFile)
    await hashed.add('127.0.1.4', 2222, b.blob)
    const text = readFileSync(hashedFile, 'utf8')
    assert.equal(text.split('\n').filter((l) => l.startsWith('|1|')).length, 2)
    assert.doesNotMatch(text, /127\.0\.1\.4/)
    assert.equal((await KnownHosts.load(hashedFile)).check('127.0.1.4', 2222, b.blob).status, 'trusted')
  })

  it('treats a missing file as empty and creates it on the first append', async () => {
    const file = path.join(dir, 'sub', 'new_known_hosts')
    const kh = await KnownHosts.load(file)
    assert.equal(kh.check('h', 22, a.blob).status, 'unknown')
    await kh.add('h', 22, a.blob)
    assert.equal(readFileSync(file, 'utf8'), `h ${a.line}\n`)
  })
})
