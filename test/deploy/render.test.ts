import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'

import {renderDeploy, renderReleases, timeline} from '../../src/deploy/render.js'
import {convergeCommand} from '../../src/deploy/status.js'
import type {DeployResult} from '../../src/deploy/run.js'
import {systemdSocket, systemdUnit, sudoersRule} from '../../src/deploy/systemd.js'

const plan = {
  release: 'R2',
  runtime: '24.22.3',
  lockHost: 'app1',
  lock: null,
  batches: [['app1'], ['app2']],
  runtimeUploads: [],
  skipped: [],
  bakeSeconds: 10,
  canaryStableMs: 15000,
  steps: ['lock', 'switch'],
}

function result(over: Partial<DeployResult>): DeployResult {
  return {
    action: 'deploy',
    environment: 'lab',
    run: 'RUN1',
    operator: 'ann@ops',
    release: 'R2',
    dryRun: false,
    plan,
    ok: true,
    stopped: null,
    hosts: [],
    markedBad: [],
    configFailure: false,
    markedAbandoned: {},
    unfinished: [],
    warnings: [],
    removed: {},
    brokeLock: null,
    buildMs: 0,
    bundleReused: false,
    bakedMs: 0,
    durationMs: 4000,
    ...over,
  }
}

describe('deploy output', () => {
  it('draws each host phases on one time axis', () => {
    const line = timeline(
      [
        {phase: 'upload', startMs: 0, ms: 1000, ok: true},
        {phase: 'switch', startMs: 1000, ms: 100, ok: true},
        {phase: 'restart', startMs: 1100, ms: 900, ok: true},
        {phase: 'health', startMs: 2000, ms: 2000, ok: false},
      ],
      4000,
    )
    assert.equal(line.length, 42)
    assert.equal(line, `|${'u'.repeat(10)}s${'R'.repeat(9)}${'!'.repeat(20)}|`)
  })

  it('the dry run prints the plan', () => {
    const text = renderDeploy(result({dryRun: true}))
    assert.match(text, /^Deploy R2 \(node 24\.22\.3\) — dry run, nothing was changed\nlock: app1 \(free\)\nbatch 1: app1\nbatch 2: app2\nsteps:\n {2}1\. lock\n/)
  })

  it('a stopped deploy says what happened on each host', () => {
    const text = renderDeploy(
      result({
        ok: false,
        stopped: 'max-fail',
        markedBad: ['app1'],
        markedAbandoned: {R2: ['app2']},
        unfinished: [{run: 'RUN0', who: 'bob@ops', at: '2026-12-08T01:00:00.000Z', action: 'deploy', releases: ['R9'], switched: ['app2']}],
        hosts: [
          {host: 'app1', address: 'a', outcome: 'failed', previous: 'R1', current: 'R1', target: 'R2', pid: null, runtimeUploaded: false, error: 'gate', phases: []},
          {host: 'app2', address: 'b', outcome: 'not-started', previous: 'R1', current: 'R1', target: 'R2', pid: null, runtimeUploaded: false, error: null, phases: []},
        ],
      }),
    )
    assert.match(text, /^HOST {2}OUTCOME {6}CURRENT/)
    assert.match(text, /app1 {2}failed {7}R1/)
    assert.match(text, /R2 is marked bad on app1 \(it failed there\)\nR2 is marked abandoned on app2\n/)
    assert.match(text, /a deploy run RUN0 by bob@ops started 2026-12-08T01:00:00\.000Z and never finished; it had switched app2 to R9\n/)
    assert.match(text, /Deploy of R2 stopped past --max-fail and rolled back: 1 failed, 1 not-started in 4\.00 s\n$/)
  })

  it('releases flags a host whose process does not run what current points at', () => {
    const hosts = [
      {host: 'app1', current: 'R2', running: 'R1', pid: 10, differs: true, releases: ['R1', 'R2'], bad: ['R2'], abandoned: [], restarts: 3, gaveUp: null, runtime: true, error: null},
      {host: 'app2', current: 'R1', running: 'R1', pid: 11, differs: false, releases: ['R1'], bad: [], abandoned: [], restarts: 0, gaveUp: null, runtime: true, error: null},
    ]
    const text = renderReleases({
      hosts,
      lock: {host: 'app1', holder: {owner: {owner: 'ann@ops', pid: 42, action: 'deploy', release: 'R3'}, heartbeatAgeS: 120}, stale: true},
      unfinished: [],
      split: convergeCommand(hosts),
    })
    assert.match(text, /app1 {2}R2 {7}R1 {7}DIFFERS  3 {9}R1 R2\(bad\)/)
    assert.match(text, /On app1 the running process does not report the release current points at\.\n/)
    assert.match(text, /lock on app1: STALE by ann@ops \(pid 42\), deploy R3; last heartbeat 120 s ago/)
    // Split: R2 (app1) and R1 (app2); R1 is on every host and unmarked, R2 is bad on app1.
    assert.match(text, /The fleet is split: .*To converge: feedops rollback --to R1\n$/)
  })

  it('the systemd unit runs the current release on its own runtime with that release\'s own config and secret', () => {
    const unit = systemdUnit({root: '/srv/feed', configGroup: 'feed'})
    // What systemd runs once it has turned each $$ into $: the app started from the release's real path.
    const line = /^ExecStart=\/bin\/sh -c '(.*)'$/m.exec(unit)![1]!.replaceAll('$$', '$')
    // Run with a stand-in node that prints what it got.
    const root = mkdtempSync(path.join(tmpdir(), 'feedops-unit-'))
    try {
      mkdirSync(path.join(root, 'releases', 'R1'), {recursive: true})
      mkdirSync(path.join(root, 'shared', 'config', 'R1'), {recursive: true})
      writeFileSync(path.join(root, 'shared', 'config', 'R1', 'app.env'), 'FEEDOPS_APP_SECRET=s3cr3t-of-R1\n')
      writeFileSync(path.join(root, 'releases', 'R1', 'node'), '#!/bin/sh\necho "$FEEDOPS_APP_SECRET $*"\n', {mode: 0o755})
      symlinkSync('releases/R1', path.join(root, 'current'))
      const ran = execFileSync('sh', ['-c', line.replaceAll('/srv/feed', root)], {encoding: 'utf8'})
      const real = path.join(realpathSync(root), 'releases', 'R1')
      assert.equal(ran, `s3cr3t-of-R1 ${real}/app.mjs --config ${root}/shared/config/R1/feedops.json\n`)
    } finally {
      rmSync(root, {recursive: true, force: true})
    }
    assert.doesNotMatch(unit, /EnvironmentFile/)
    assert.match(unit, /^SupplementaryGroups=feed$/m)
    assert.match(unit, /^User=feed$/m)
    assert.match(unit, /^Requires=feed\.socket$/m)
    const socket = systemdSocket({address: '10.0.1.7', port: 8080})
    assert.match(socket, /^ListenStream=10\.0\.1\.7:8080$/m)
    assert.match(systemdSocket({address: 'fd00::7', port: 8080}), /^ListenStream=\[fd00::7\]:8080$/m)
    assert.equal(sudoersRule('deploy'), '# Written by `feedops play provision`.\ndeploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart feed, /usr/bin/systemctl stop feed\n')
  })
})
