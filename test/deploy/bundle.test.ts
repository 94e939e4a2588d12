import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import {copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, describe, it} from 'node:test'

import {buildBundle, KEEP_LOCAL_BUILDS} from '../../src/deploy/bundle.js'
import {ensureRuntime, feedopsCacheDir, localRuntimeNode} from '../../src/deploy/runtime.js'

function smallProject(main: string): {root: string; cacheDir: string} {
  const root = mkdtempSync(path.join(tmpdir(), 'feedops-bundle-'))
  mkdirSync(path.join(root, 'app'))
  mkdirSync(path.join(root, 'src', 'deploy'), {recursive: true})
  writeFileSync(path.join(root, 'app', 'lib.ts'), "export const word: string = 'one'\n")
  writeFileSync(path.join(root, 'app', 'main.ts'), main)
  writeFileSync(path.join(root, 'src', 'deploy', 'pm.ts'), "console.log('pm')\n")
  return {root, cacheDir: path.join(root, 'cache')}
}

/** The release build on a small project of its own: esbuild runs only when an input changed. */
describe('release bundle', () => {
  const {root, cacheDir} = smallProject("import {word} from './lib.js'\nconsole.log(word)\n")
  after(() => rmSync(root, {recursive: true, force: true}))

  it('reuses the last build while no input changed, and builds again once one does', async () => {
    const first = await buildBundle({cacheDir, runtime: '24.22.3', root})
    const second = await buildBundle({cacheDir, runtime: '24.22.3', root})
    assert.equal(first.reused, false)
    assert.equal(second.reused, true)
    assert.notEqual(second.manifest.id, first.manifest.id)
    assert.deepEqual(second.manifest.sha256, first.manifest.sha256)
    assert.notEqual(second.tarballSha256, first.tarballSha256) // a manifest of its own
    // Touched, not changed (a checkout or a save with no edit): its content is compared, and it still is a reuse.
    utimesSync(path.join(root, 'app', 'lib.ts'), new Date(), new Date(Date.now() + 10_000))
    assert.equal((await buildBundle({cacheDir, runtime: '24.22.3', root})).reused, true)
    // An imported file changes: esbuild runs, and the output has the change.
    writeFileSync(path.join(root, 'app', 'lib.ts'), "export const word: string = 'two'\n")
    const third = await buildBundle({cacheDir, runtime: '24.22.3', root})
    assert.equal(third.reused, false)
    assert.notEqual(third.manifest.sha256['app.cjs'], first.manifest.sha256['app.cjs'])
    assert.equal(third.manifest.sha256['app.mjs'], first.manifest.sha256['app.mjs']) // the entry, not the app
    assert.match(readFileSync(path.join(third.dir, 'app.cjs'), 'utf8'), /two/)
    // So does a setting esbuild reads without listing it as an input.
    writeFileSync(path.join(root, 'tsconfig.json'), '{}\n')
    assert.equal((await buildBundle({cacheDir, runtime: '24.22.3', root})).reused, false)
    // And --rebuild, with nothing changed; the build after it may reuse it again.
    const forced = await buildBundle({cacheDir, runtime: '24.22.3', root, rebuild: true})
    assert.equal(forced.reused, false)
    assert.match(readFileSync(path.join(forced.dir, 'app.cjs'), 'utf8'), /two/)
    assert.equal((await buildBundle({cacheDir, runtime: '24.22.3', root})).reused, true)
  })

  it('keeps the newest builds in the local cache, and the one the next build may reuse', async () => {
    const builds = []
    for (let i = 0; i < KEEP_LOCAL_BUILDS + 2; i++) builds.push(await buildBundle({cacheDir, runtime: '24.22.3', root}))
    const left = readdirSync(path.join(cacheDir, 'releases')).filter((f) => /^\d{8}T\d{6}Z-/.test(f) && !f.endsWith('.tar.gz'))
    const newest = builds.slice(-KEEP_LOCAL_BUILDS).map((b) => b.manifest.id)
    const esbuildRun = (JSON.parse(readFileSync(path.join(cacheDir, 'releases', 'last-build.json'), 'utf8')) as {release: string}).release
    assert.deepEqual(left.sort(), [...new Set([...newest, esbuildRun])].sort())
    for (const id of left) assert.ok(existsSync(path.join(cacheDir, 'releases', `${id}.tar.gz`)))
    assert.ok(builds.every((b) => b.reused), 'the first of them reuses a build that is still there')
  })
})

/** Starts the app of a release unpacked at `host` as pm.ts starts it, and says what it printed. */
function startApp(node: string, host: string): {stdout: string; stderr: string} {
  const ran = spawnSync(node, [path.join(host, 'app.mjs')], {env: {PATH: process.env.PATH}, encoding: 'utf8'})
  return {stdout: ran.stdout, stderr: ran.stderr}
}

/**
 * Unpacks a release into a fresh folder, as on a host (`unpack`), starts its app there and checks what it
 * prints and that the runtime took the release's code cache (app-loader.ts says when it cannot).
 */
function startOnHost(node: string, prints: string, unpack: (host: string) => void): void {
  const host = mkdtempSync(path.join(tmpdir(), 'feedops-host-'))
  try {
    unpack(host)
    assert.deepEqual(startApp(node, host), {stdout: prints, stderr: ''})
  } finally {
    rmSync(host, {recursive: true, force: true})
  }
}

describe('release bundle: start-up', () => {
  const {root, cacheDir} = smallProject("import {STATUS_CODES} from 'node:http'\nimport {word} from './lib.js'\nconsole.log(word, STATUS_CODES[200])\n")
  after(() => rmSync(root, {recursive: true, force: true}))

  it("carries a compile cache made by the hosts' runtime, which that runtime accepts wherever the release is unpacked", async () => {
    const runtime = await ensureRuntime('24.22.3', feedopsCacheDir())
    const node = await localRuntimeNode(runtime)
    assert.ok(node, 'this machine runs the linux-x64 runtime')
    const built = await buildBundle({cacheDir, runtime: '24.22.3', root, runtimeNode: async () => node})
    assert.equal(built.manifest.compileCache, true)
    // Built-ins come through require(), not as ESM imports (see bundle.ts): in the app, and in its ESM entry.
    assert.match(readFileSync(path.join(built.dir, 'app.cjs'), 'utf8'), /require\("node:http"\)/)
    const entry = readFileSync(path.join(built.dir, 'app.mjs'), 'utf8')
    assert.match(entry, /\("node:vm"\)/) // a require() call, through the shim esbuild puts over it
    assert.doesNotMatch(entry, /from\s*"node:/)
    // Unpacked somewhere else, as on a host, and started as pm.ts starts it: the cache is read and accepted.
    startOnHost(node!, 'one OK\n', (host) => {
      execFileSync('tar', ['-xzf', built.tarball, '-C', host])
      // Readable by the service user, who is not the one who unpacks the release.
      const files = readdirSync(path.join(host, 'cache'), {recursive: true, withFileTypes: true}).filter((f) => f.isFile())
      assert.ok(files.length > 0)
      for (const f of files) assert.equal(statSync(path.join(f.parentPath, f.name)).mode & 0o777, 0o644)
    })
    // A reused build keeps the cache; one without a runtime to make it with builds anew, without it.
    const again = await buildBundle({cacheDir, runtime: '24.22.3', root, runtimeNode: async () => node})
    assert.equal(again.reused, true)
    assert.equal(again.manifest.compileCache, true)
    const none = await buildBundle({cacheDir, runtime: '24.22.3', root})
    assert.equal(none.reused, false)
    assert.equal(none.manifest.compileCache, undefined)
    // A runtime that cannot run here only costs the cache, not the build.
    writeFileSync(path.join(root, 'app', 'lib.ts'), "export const word: string = 'two'\n")
    const broken = await buildBundle({cacheDir, runtime: '24.22.3', root, runtimeNode: async () => '/bin/false'})
    assert.equal(broken.reused, false)
    assert.equal(broken.manifest.compileCache, undefined)
    assert.match(readFileSync(path.join(broken.dir, 'app.cjs'), 'utf8'), /two/)
    const retried = await buildBundle({cacheDir, runtime: '24.22.3', root, runtimeNode: async () => node})
    assert.equal(retried.reused, false)
    assert.equal(retried.manifest.compileCache, true)
  })

  it('with cacheLater, packs a new build without its compile cache and the cache after it, as a tarball of its own', async () => {
    const runtime = await ensureRuntime('24.22.3', feedopsCacheDir())
    const node = (await localRuntimeNode(runtime))!
    const tarList = (f: string) => execFileSync('tar', ['-tzf', f], {encoding: 'utf8'}).split('\n').filter(Boolean)
    writeFileSync(path.join(root, 'app', 'lib.ts'), "export const word: string = 'three'\n")
    const built = await buildBundle({cacheDir, runtime: '24.22.3', root, runtimeNode: async () => node, cacheLater: true})
    assert.equal(built.reused, false)
    assert.equal(built.manifest.compileCache, undefined)
    assert.ok(!tarList(built.tarball).some((f) => f.startsWith('cache')), 'the release tarball has no cache/')
    const cache = await built.cache
    assert.ok(cache, 'the cache came')
    const listed = tarList(cache.tarball)
    assert.ok(listed.length > 1 && listed.every((f) => f.startsWith('cache/')), listed.join(' '))
    assert.ok(existsSync(path.join(built.dir, 'cache')) && !existsSync(path.join(built.dir, 'cache.tmp')))
    // Unpacked on a "host" the way installCacheStep does it, the cache is accepted.
    startOnHost(node, 'three OK\n', (host) => {
      execFileSync('tar', ['-xzf', built.tarball, '-C', host])
      mkdirSync(path.join(host, 'cache'))
      execFileSync('tar', ['-xzf', cache.tarball, '-C', path.join(host, 'cache'), '--strip-components=1'])
    })
    // Reused, the build has its cache at once, in its tarball.
    const again = await buildBundle({cacheDir, runtime: '24.22.3', root, runtimeNode: async () => node, cacheLater: true})
    assert.equal(again.reused, true)
    assert.equal(await again.cache, null)
    assert.ok(tarList(again.tarball).some((f) => f.startsWith('cache/')))
    // A last build whose CLI died before its cache was made is reused, and gets its cache now.
    rmSync(path.join(built.dir, 'cache'), {recursive: true}) // the build reuses the last esbuild run's files
    const healed = await buildBundle({cacheDir, runtime: '24.22.3', root, runtimeNode: async () => node, cacheLater: true})
    assert.equal(healed.reused, true)
    assert.ok((await healed.cache) && existsSync(path.join(healed.dir, 'cache')))
    // A runtime that cannot run here: no cache, and the next build is not a reuse (so that it tries again).
    writeFileSync(path.join(root, 'app', 'lib.ts'), "export const word: string = 'four'\n")
    const broken = await buildBundle({cacheDir, runtime: '24.22.3', root, runtimeNode: async () => '/bin/false', cacheLater: true})
    assert.equal(await broken.cache, null)
    assert.equal((await buildBundle({cacheDir, runtime: '24.22.3', root, runtimeNode: async () => node, cacheLater: true})).reused, false)
  })

  it('never runs the app with a code cache made for another app.cjs, and says when it starts without one', async () => {
    const node = (await localRuntimeNode(await ensureRuntime('24.22.3', feedopsCacheDir())))!
    const build = async (word: string) => {
      writeFileSync(path.join(root, 'app', 'lib.ts'), `export const word: string = '${word}'\n`)
      return buildBundle({cacheDir, runtime: '24.22.3', root, runtimeNode: async () => node})
    }
    const other = await build('a longer word')
    const built = await build('six')
    const cacheFile = (b: typeof built) => readdirSync(path.join(b.dir, 'cache')).find((f) => f.endsWith('.jsc'))!
    assert.notEqual(cacheFile(built), cacheFile(other)) // named after the bundle
    const host = mkdtempSync(path.join(tmpdir(), 'feedops-host-'))
    try {
      execFileSync('tar', ['-xzf', built.tarball, '-C', host])
      const own = path.join(host, 'cache', cacheFile(built))
      assert.deepEqual(startApp(node, host), {stdout: 'six OK\n', stderr: ''})
      // The other bundle's cache beside this one's is never read ...
      copyFileSync(path.join(other.dir, 'cache', cacheFile(other)), path.join(host, 'cache', cacheFile(other)))
      rmSync(own)
      const without = startApp(node, host)
      assert.equal(without.stdout, 'six OK\n')
      assert.match(without.stderr, /^app\.mjs: no code cache in cache\/ for this app\.cjs \(app-[0-9a-f]{8}\.jsc\); starting without one\n$/)
      // ... and under this one's name V8 rejects it (it checks the length of the source), and the app still runs.
      copyFileSync(path.join(other.dir, 'cache', cacheFile(other)), own)
      const rejected = startApp(node, host)
      assert.equal(rejected.stdout, 'six OK\n')
      assert.match(rejected.stderr, /the runtime rejected cache\/app-[0-9a-f]{8}\.jsc/)
    } finally {
      rmSync(host, {recursive: true, force: true})
    }
  })
})
