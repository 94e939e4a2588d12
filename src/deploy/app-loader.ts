/**
 * The app's entry in a release (releases/<id>/app.mjs, bundled by bundle.ts): runs the app's bundle, app.cjs
 * beside it, with the V8 code cache the build made for it in cache/.
 *
 * Why not Node's own compile cache (NODE_COMPILE_CACHE): Node serializes a module's code right after
 * compiling it, so its cache holds only the few functions V8 compiles eagerly, and every start still compiles
 * the rest of the module initializers. This cache is taken once the build's run of the app has loaded every
 * module (`app.mjs --help`), so it holds those functions too: a quarter less CPU per start (see BENCHMARKS.md).
 *
 * V8 checks a cache against its source by length only, so the file is named after the bundle's CRC-32: a
 * cache never meets another bundle. A cache that is missing or rejected only costs speed, and says so once
 * on stderr (the app's log).
 *
 * Build time: with $FEEDOPS_CODE_CACHE_OUT set to a folder, the cache is written there when the process exits.
 */
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {createRequire, Module} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import vm from 'node:vm'
import {crc32} from 'node:zlib'

const release = path.dirname(fileURLToPath(import.meta.url))
const bundle = path.join(release, 'app.cjs')
// esbuild keeps the entry's #! line, which is no JavaScript inside the module wrapper; `//` keeps every offset.
const source = readFileSync(bundle, 'utf8').replace(/^#!/, '//')
const cacheName = `app-${crc32(source).toString(16).padStart(8, '0')}.jsc`
const makeInto = process.env.FEEDOPS_CODE_CACHE_OUT

let cachedData: Buffer | undefined
let missing = false
if (!makeInto && existsSync(path.join(release, 'cache'))) {
  try {
    cachedData = readFileSync(path.join(release, 'cache', cacheName))
  } catch {
    missing = true
  }
}
const script = new vm.Script(Module.wrap(source), {
  filename: bundle,
  ...(cachedData ? {cachedData} : {}),
  importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
})
if (missing) process.stderr.write(`app.mjs: no code cache in cache/ for this app.cjs (${cacheName}); starting without one\n`)
else if (script.cachedDataRejected) process.stderr.write(`app.mjs: the runtime rejected cache/${cacheName} (made by another runtime?); starting without it\n`)
if (makeInto) process.once('exit', () => writeFileSync(path.join(makeInto, cacheName), script.createCachedData()))

const module = new Module(bundle)
module.filename = bundle
const run = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: Module, filename: string, dirname: string) => void
run(module.exports, createRequire(bundle), module, bundle, release)
