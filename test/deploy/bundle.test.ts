import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, describe, it} from 'node:test'

import {buildBundle} from '../../src/deploy/bundle.js'

/** The release build on a small project of its own: esbuild runs only when an input changed. */
describe('release bundle', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'feedops-bundle-'))
  const cacheDir = path.join(root, 'cache')
  mkdirSync(path.join(root, 'app'))
  mkdirSync(path.join(root, 'src', 'deploy'), {recursive: true})
  writeFileSync(path.join(root, 'app', 'lib.ts'), "export const word: string = 'one'\n")
  writeFileSync(path.join(root, 'app', 'main.ts'), "import {word} from './lib.js'\nconsole.log(word)\n")
  writeFileSync(path.join(root, 'src', 'deploy', 'pm.ts'), "console.log('pm')\n")
  after(() => rmSync(root, {recursive: true, force: true}))

  it('reuses the last build while no input changed, and builds again once one does', async () => {
    const first = await buildBundle({cacheDir, runtime: '24.22.3', root})
    const second = await buildBundle({cacheDir, runtime: '24.22.3', root})
    assert.equal(first.reused, false)
    assert.equal(second.reused, true)
    assert.notEqual(second.manifest.id, first.manifest.id)
    assert.deepEqual(second.manifest.sha256, first.manifest.sha256)
    assert.notEqual(second.tarballSha256, first.tarballSha256) // a manifest of its own
    // An imported file changes: esbuild runs, and the output has the change.
    writeFileSync(path.join(root, 'app', 'lib.ts'), "export const word: string = 'two'\n")
    const third = await buildBundle({cacheDir, runtime: '24.22.3', root})
    assert.equal(third.reused, false)
    assert.notEqual(third.manifest.sha256['app.mjs'], first.manifest.sha256['app.mjs'])
    assert.match(readFileSync(path.join(third.dir, 'app.mjs'), 'utf8'), /two/)
    // So does a setting esbuild reads without listing it as an input.
    writeFileSync(path.join(root, 'tsconfig.json'), '{}\n')
    assert.equal((await buildBundle({cacheDir, runtime: '24.22.3', root})).reused, false)
  })
})
