/**
 * How bin/run.js starts the CLI: the one-file bundle dist/cli/feedops.cjs (src/build/bundle-cli.ts) run as
 * a vm.Script with the V8 code cache the build made beside it, the way a release starts the app
 * (src/deploy/app-loader.ts). oclif then finds the commands in the bundle's COMMANDS (its `explicit`
 * command discovery), and the manifest still describes them, so --help, topics and plugins work as ever.
 *
 * One cache per command. V8 reads a whole cache before the script runs, and one holding every module (about
 * 5 MB) costs `--version` more to read than it saves; a cache taken at the end of a command's own run holds
 * what that command compiled (its modules and the functions it ran), and only that. The build makes `base`
 * from a `--help` run (what --version and --help use); a command starts from `base` until it has its own,
 * which its first run that ends with exit 0 writes.
 *
 * V8 checks a cache against its source by length only, so caches are named after the bundle file (size,
 * modification time to the microsecond, inode: every build writes a new one; a CRC of its 3.6 MB would cost
 * a few ms per start) and the Node version: a cache never meets another bundle or another V8. A missing or rejected cache only costs
 * speed: the run goes on without it and says nothing (the --profile-start report shows it); a rejected one is
 * written again at the end of the run. With no bundle
 * (dist/ from tsc alone) or FEEDOPS_BUNDLE=0 the CLI runs from dist/commands as oclif loads them, with the
 * per-module compile cache (compile-cache.ts).
 *
 * Build time: FEEDOPS_CLI_CACHE_BUILD=base ignores any cache and writes `base` at exit.
 */
import {mkdirSync, readFileSync, renameSync, statSync, writeFileSync} from 'node:fs'
import {createRequire, Module} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import vm from 'node:vm'

import type {ConfigLocation} from '../config/load.js'
import {markPhase, reportStartTimingAtExit, startTimingWanted} from '../start-timing.js'
import {prefetchLocation} from './prefetch-args.js'

export const BUNDLE = 'dist/cli/feedops.cjs'

interface BundleExports {
  COMMANDS: Record<string, unknown>
  execute(options: {args: string[]; loadOptions: {root: string; pjson: unknown}}): Promise<unknown>
  /** Reads the config and starts the inventory request for a command that lists hosts (prefetch.ts). */
  prefetch(loc: ConfigLocation): void
}

/** The cache a command line starts from: its command's (or topic's) first word; --version and any help: base. */
export function cacheKey(argv: readonly string[]): string {
  const end = argv.indexOf('--')
  const flags = end === -1 ? argv : argv.slice(0, end)
  const word = argv[0]
  if (word === undefined || word === 'help' || flags.includes('--help') || flags.includes('-h')) return 'base'
  return /^[a-z][a-z0-9-]*$/.test(word) ? word : 'base'
}

/** `root` is the project folder (holding package.json and dist/). */
export async function startCli(root: string, argv = process.argv.slice(2)): Promise<void> {
  const bundle = path.join(root, BUNDLE)
  const loaderAt = performance.now()
  let source: Buffer | undefined
  if (process.env.FEEDOPS_BUNDLE !== '0') {
    try {
      source = readFileSync(bundle)
    } catch {
      // tsc output only: run unbundled
    }
  }
  if (startTimingWanted(argv, process.env)) reportStartTimingAtExit(source ? 'bundle' : 'unbundled')
  if (!source) return startUnbundled(root, argv)

  const cli = runBundle(bundle, source, process.env.FEEDOPS_CLI_CACHE_BUILD === 'base', argv, loaderAt)
  const pjson = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {oclif: Record<string, unknown>}
  pjson.oclif.commands = {strategy: 'explicit', target: `./${BUNDLE}`, identifier: 'COMMANDS'}
  const early = prefetchLocation(argv)
  if (early) cli.prefetch(early)
  await cli.execute({args: argv, loadOptions: {root, pjson}})
}

function runBundle(bundle: string, source: Buffer, building: boolean, argv: readonly string[], loaderAt: number): BundleExports {
  const dir = path.dirname(bundle)
  // FEEDOPS_CLI_CACHE_DIR: caches elsewhere (tests corrupt one there without touching the build's).
  const st = statSync(bundle, {bigint: true})
  const build = `${st.size}-${(st.mtimeNs / 1000n).toString(36)}-${st.ino.toString(36)}`
  const stem = path.join(process.env.FEEDOPS_CLI_CACHE_DIR || dir, `feedops-${build}-${process.version}-${process.arch}`)
  const key = building ? 'base' : cacheKey(argv)
  let cachedData: Buffer | undefined
  let from: string | undefined
  for (const k of building ? [] : key === 'base' ? ['base'] : [key, 'base']) {
    try {
      cachedData = readFileSync(`${stem}.${k}.jsc`)
      from = k
      break
    } catch {
      // not made yet
    }
  }
  // The bundle is ASCII (bundle-cli.ts): read as Latin-1, it becomes a one-byte string with no decoding.
  const readAt = performance.now()
  const script = new vm.Script(Module.wrap(source.toString('latin1')), {
    filename: bundle,
    ...(cachedData ? {cachedData} : {}),
    // oclif imports ES-module plugins with import().
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  })
  const status = building ? 'building base' : !cachedData ? 'none' : script.cachedDataRejected ? `${from} rejected` : `${from} used`
  // A command's own cache, from a run that went through (a failed one may have stopped early).
  if (building || from !== key || script.cachedDataRejected) process.once('exit', (code) => (building || code === 0) && writeCache(`${stem}.${key}.jsc`, script))

  // Registered as a loaded module, so oclif's require() of the bundle (the COMMANDS target) gets this one.
  const mod = new Module(bundle) as Module & {filename: string; paths: string[]; loaded: boolean}
  mod.filename = bundle
  mod.paths = (Module as unknown as {_nodeModulePaths(dir: string): string[]})._nodeModulePaths(dir)
  ;(Module as unknown as {_cache: Record<string, Module>})._cache[bundle] = mod
  const run = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: Module, filename: string, dirname: string) => void
  const compiledAt = performance.now()
  run(mod.exports, createRequire(bundle), mod, bundle, dir)
  mod.loaded = true
  const ms = (a: number, b: number) => `${(b - a).toFixed(0)} ms`
  const now = performance.now()
  markPhase('bundle', `code cache: ${status}; node ${loaderAt.toFixed(0)} ms, read ${ms(loaderAt, readAt)}, compile ${ms(readAt, compiledAt)}, run ${ms(compiledAt, now)}`)
  return mod.exports as BundleExports
}

/** Atomically, and never failing the run (a read-only install, a full disk). */
function writeCache(file: string, script: vm.Script): void {
  try {
    mkdirSync(path.dirname(file), {recursive: true})
    const tmp = `${file}.${process.pid}.tmp`
    writeFileSync(tmp, script.createCachedData())
    renameSync(tmp, file)
  } catch {
    // run without a cache next time too
  }
}

async function startUnbundled(root: string, argv: string[]): Promise<void> {
  const {installCompileCache} = await import('./compile-cache.js')
  installCompileCache()
  const {execute} = await import('@oclif/core')
  await execute({args: argv, dir: path.join(root, 'bin', 'run.js')})
}

/** The project folder of this file (dist/src/cli/cli-loader.js). */
export function projectRootOfLoader(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
}
