import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {describe, it} from 'node:test'

import {commandLine, quoteArgv} from '../../src/ssh/command.js'

/** What a POSIX shell makes of a line: the argv it would run, as printed one per line. */
function shellArgs(line: string): string[] {
  const out = execFileSync('sh', ['-c', `set -- ${line}; for a in "$@"; do printf '%s\\0' "$a"; done`], {encoding: 'utf8'})
  return out.split('\0').slice(0, -1)
}

describe('remote commands as data', () => {
  const nasty = ['printf', '%s\n', "it's", '$HOME', '`id`', 'a b', '', '*', '; rm -rf /', 'x\ny', '"q"', '\\', '!bang', '~', '#c']

  it('quotes every word of an argv so the shell sees exactly those words', () => {
    const line = quoteArgv(nasty)
    assert.deepEqual(shellArgs(line), nasty)
    const out = execFileSync('sh', ['-c', line], {encoding: 'utf8'})
    assert.equal(out, nasty.slice(2).map((w) => `${w}\n`).join(''))
  })

  it('sends a string as the user typed it', () => {
    assert.equal(commandLine('echo $HOME && uname -a'), 'echo $HOME && uname -a')
    assert.equal(commandLine(['uname', '-a']), 'uname -a')
  })

  it('builds cwd, env and sudo around the command, quoting the values', () => {
    assert.equal(commandLine(['ls', 'my dir'], {cwd: "/srv/it's"}), `cd "/srv/it's" || exit 1; ls 'my dir'`)
    assert.equal(commandLine({argv: ['env']}, {env: {A: 'x y', B: '$z'}}), "export A='x y'; export B=\\$z; env")
    assert.equal(commandLine(['systemctl', 'restart', 'feed'], {sudo: true}), "sudo -n -- sh -c 'systemctl restart feed'")
    assert.equal(
      commandLine({script: 'psql -c "select 1"', cwd: '/tmp', sudo: {user: 'postgres'}}),
      `sudo -n -u postgres -- sh -c 'cd /tmp || exit 1; psql -c "select 1"'`,
    )
  })

  it('runs what it builds: env, cwd and a failing cd', () => {
    const out = execFileSync('sh', ['-c', commandLine(['sh', '-c', 'echo "$A"; pwd'], {cwd: '/', env: {A: "it's $x"}})], {encoding: 'utf8'})
    assert.equal(out, "it's $x\n/\n")
    assert.throws(() => execFileSync('sh', ['-c', commandLine(['true'], {cwd: '/nonexistent-dir'})], {stdio: 'ignore'}))
  })

  it('rejects empty commands, bad variable names and ambiguous steps', () => {
    assert.throws(() => commandLine([]), /empty argv/)
    assert.throws(() => commandLine('   '), /empty command/)
    assert.throws(() => commandLine(['env'], {env: {'A-B': '1'}}), /invalid environment variable/)
    assert.throws(() => commandLine({argv: ['a'], script: 'b'}), /exactly one/)
    assert.throws(() => commandLine({}), /exactly one/)
  })
})
