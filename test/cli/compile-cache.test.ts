import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {promisify} from 'node:util'

const run = promisify(execFile)
const hook = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/compile-cache.js')).href

/**
 * Each case is a fresh Node process (the hook works per process), loading CommonJS modules from a temp dir
 * with the cache in another; it prints what the modules returned and the hook's counts.
 */
describe('compile cache (Node 20 hook)', () => {
  let dir: string
  let cache: string

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'feedops-cc-'))
    cache = path.join(dir, 'cache')
    writeFileSync(path.join(dir, 'answer.cjs'), 'module.exports = {value: 40 + 2, file: __filename, self: require.resolve("./answer.cjs")}\n')
    writeFileSync(path.join(dir, 'dynamic.cjs'), 'module.exports = () => import("node:path").then((m) => typeof m.join)\n')
    writeFileSync(
      path.join(dir, 'main.mjs'),
      `import {createRequire} from 'node:module'
import {installCompileCache} from ${JSON.stringify(hook)}
const stats = installCompileCache(process.argv[2])
const require = createRequire(import.meta.url)
const answer = require('./answer.cjs')
const dynamic = await require('./dynamic.cjs')()
process.stdout.write(JSON.stringify({answer, dynamic, stats}))
`,
    )
  })
  after(() => rmSync(dir, {recursive: true, force: true}))

  async function load(cacheDir = cache, env: NodeJS.ProcessEnv = {}) {
    const {stdout} = await run(process.execPath, [path.join(dir, 'main.mjs'), cacheDir], {env: {...process.env, ...env}})
    return JSON.parse(stdout) as {answer: {value: number; file: string; self: string}; dynamic: string; stats: {hits: number; misses: number; skipped: number} | null}
  }

  it('compiles once, then runs from the cache; modules keep __filename, require.resolve and import()', async (t) => {
    if (process.versions.node.split('.')[0] !== '20') t.skip('Node ≥ 22 has its own compile cache')
    const first = await load()
    assert.equal(first.answer.value, 42)
    assert.equal(first.answer.file, path.join(dir, 'answer.cjs'))
    assert.equal(first.answer.self, path.join(dir, 'answer.cjs'))
    assert.equal(first.dynamic, 'function')
    assert.deepEqual(first.stats, {hits: 0, misses: 1, skipped: 1})
    assert.equal(readdirSync(cache).length, 1)
    const second = await load()
    assert.equal(second.answer.value, 42)
    assert.deepEqual(second.stats, {hits: 1, misses: 0, skipped: 1})
  })

  it('never runs stale bytecode: an edit of the same length is compiled afresh', async (t) => {
    if (process.versions.node.split('.')[0] !== '20') t.skip('Node ≥ 22 has its own compile cache')
    await load()
    const file = path.join(dir, 'answer.cjs')
    writeFileSync(file, readFileSync(file, 'utf8').replace('40 + 2', '40 + 3'))
    const edited = await load()
    assert.equal(edited.answer.value, 43)
    assert.deepEqual(edited.stats, {hits: 0, misses: 1, skipped: 1})
    assert.equal((await load()).stats?.hits, 1)
  })

  it('a corrupt cache file or an unusable cache dir only costs the compile', async (t) => {
    if (process.versions.node.split('.')[0] !== '20') t.skip('Node ≥ 22 has its own compile cache')
    await load()
    const [entry] = readdirSync(cache)
    const stored = readFileSync(path.join(cache, entry!))
    writeFileSync(path.join(cache, entry!), Buffer.concat([stored.subarray(0, 20), Buffer.alloc(stored.length - 20, 7)]))
    const corrupt = await load()
    assert.equal(corrupt.answer.value, 43)
    assert.equal(corrupt.stats?.misses, 1)
    assert.equal((await load()).stats?.hits, 1, 'rewritten after the rejected one')

    const notADir = path.join(dir, 'answer.cjs', 'cache') // a path under a file: every write fails
    const r = await load(notADir)
    assert.equal(r.answer.value, 43)
    assert.equal(r.stats?.misses, 1)
  })

  it('FEEDOPS_COMPILE_CACHE=0 turns it off', async () => {
    const off = path.join(dir, 'off')
    const r = await load(off, {FEEDOPS_COMPILE_CACHE: '0'})
    assert.ok([42, 43].includes(r.answer.value)) // 43 once the edit case has run
    assert.equal(r.stats, null)
    assert.throws(() => readdirSync(off), /ENOENT/)
  })
})
