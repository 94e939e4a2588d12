import assert from 'node:assert/strict'
import {mkdtempSync, realpathSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'

import {cli} from '../support/cli.js'

/** `lab status` and `lab down` find the lab from --config / $FEEDOPS_CONFIG too (the lab.dir its config names). */
describe('lab status and lab down follow the config', {timeout: 180_000}, () => {
  const labDir = realpathSync(mkdtempSync(path.join(tmpdir(), 'feedops-labcfg-')))
  const file = path.join(labDir, 'feedops.yml')
  writeFileSync(file, `environments:\n  lab:\n    inventory: {source: ec2}\n    lab: {dir: ${JSON.stringify(labDir)}}\n`)

  it('--config and $FEEDOPS_CONFIG name the lab dir', async () => {
    for (const [args, env] of [
      [['lab', 'status', '--json', '--config', file], {}],
      [['lab', 'down', '--json', '--config', file], {}],
      [['lab', 'status', '--json'], {FEEDOPS_CONFIG: file}],
      [['lab', 'down', '--json'], {FEEDOPS_CONFIG: file}],
    ] as const) {
      const r = await cli([...args], {env: {...env, FEEDOPS_LAB_DIR: '/nonexistent-lab'}})
      assert.equal(r.code, 3, r.stderr) // no lab was ever started there: nothing to show or stop
      const status = JSON.parse(r.stdout)
      assert.equal(status.dir, labDir, args.join(' '))
      assert.equal(status.configFile, file)
    }
  })

  it('--dir still wins, and a config without a lab section is bad input', async () => {
    const other = mkdtempSync(path.join(tmpdir(), 'feedops-labcfg-'))
    const r = await cli(['lab', 'status', '--json', '--dir', other, '--config', file])
    assert.equal(JSON.parse(r.stdout).dir, other)
    const plain = path.join(other, 'plain.yml')
    writeFileSync(plain, 'environments:\n  prod:\n    inventory: {source: ec2}\n')
    const bad = await cli(['lab', 'down', '--config', plain])
    assert.equal(bad.code, 2, bad.stderr)
    assert.match(bad.stderr, /^Error: .*plain\.yml: environments\.prod\.lab is missing, so the config names no lab dir\.\nFix: Pass --dir/)
  })
})
