import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {describe, it} from 'node:test'

const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../app/main.js')

function start(args: string[]): Promise<{code: number | null; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], {stdio: ['ignore', 'ignore', 'pipe'], env: {...process.env, FEEDOPS_CONFIG: undefined}})
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stderr}))
  })
}

/** The app's start-up errors are printed by the CLI's formatter: one sentence, a Fix line, exit 2. */
describe('app start-up errors', {timeout: 240_000}, () => {
  it('an unknown option, a bad port, a config path that is a directory (with --debug: and its stack)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-appmain-'))
    for (const [args, message] of [
      [['--bogus'], /^Error: Unknown option '--bogus'.*\nFix: Usage: node dist\/app\/main\.js --config FILE/],
      [['--config', dir, '--port', 'x'], /^Error: --port x is not a port number\.\nFix: Usage: /],
    ] as const) {
      const r = await start([...args])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, message)
      assert.doesNotMatch(r.stderr, /Bug:|\n +at /)
    }
    const r = await start(['--config', dir, '--debug'])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /^Error: Config file .* is a directory, not a file\.\nFix: .*\nUserError: Config file .*\n +at /)
  })
})
