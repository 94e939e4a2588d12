import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {promisify} from 'node:util'

import {labPaths} from '../../src/lab/layout.js'
import {startTestLab, type TestLab} from '../support/lab.js'

const run = promisify(execFile)

function ssh(lab: TestLab, address: string, command: string, extra: string[] = []) {
  // ssh keeps the first value given for an option, so extra options go first.
  return run('ssh', [
    ...extra,
    '-i', labPaths.clientKey(lab.dir),
    '-o', `UserKnownHostsFile=${labPaths.knownHosts(lab.dir)}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=5',
    '-F', '/dev/null',
    '-p', '2222',
    `root@${address}`,
    command,
  ])
}

describe('lab sshd hosts', () => {
  let lab: TestLab
  before(async () => {
    lab = await startTestLab({hosts: 3})
  })
  after(() => lab?.stop())

  it('every host answers over real ssh with strict host key checking and its own env', async () => {
    for (const h of lab.layout.hosts) {
      const {stdout} = await ssh(lab, h.address, 'echo "$FEEDOPS_HOST $FEEDOPS_HOST_ROOT $HOME"')
      const root = labPaths.hostRoot(lab.dir, h.name)
      assert.equal(stdout.trim(), `${h.name} ${root} ${root}`)
    }
  })

  it('known_hosts holds one distinct key per host, in [address]:2222 form', () => {
    const lines = readFileSync(labPaths.knownHosts(lab.dir), 'utf8').trim().split('\n')
    assert.equal(lines.length, 3)
    assert.deepEqual(lines.map((l) => l.split(' ')[0]), lab.layout.hosts.map((h) => `[${h.address}]:2222`))
    assert.equal(new Set(lines.map((l) => l.split(' ')[2])).size, 3)
  })

  it('a host key that does not match known_hosts is refused', async () => {
    // app2's key listed under app1's address: strict checking must reject app1.
    const lines = readFileSync(labPaths.knownHosts(lab.dir), 'utf8').trim().split('\n')
    const wrong = path.join(lab.dir, 'known_hosts.wrong')
    const swapped = `[${lab.layout.hosts[0]!.address}]:2222 ${lines[1]!.split(' ').slice(1).join(' ')}\n`
    await import('node:fs').then((fs) => fs.writeFileSync(wrong, swapped))
    await assert.rejects(ssh(lab, lab.layout.hosts[0]!.address, 'true', ['-o', `UserKnownHostsFile=${wrong}`]), /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/)
  })

  it('sftp upload lands in the host folder', async () => {
    const h = lab.layout.hosts[1]!
    const target = path.join(labPaths.hostRoot(lab.dir, h.name), 'uploaded.txt')
    const src = path.join(lab.dir, 'to-upload.txt')
    await import('node:fs').then((fs) => fs.writeFileSync(src, 'hello host\n'))
    await run('scp', [
      '-s', '-i', labPaths.clientKey(lab.dir),
      '-o', `UserKnownHostsFile=${labPaths.knownHosts(lab.dir)}`,
      '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-F', '/dev/null',
      '-P', '2222', src, `root@${h.address}:${target}`,
    ])
    assert.equal(readFileSync(target, 'utf8'), 'hello host\n')
  })
})
