import {execFile, spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {builtinModules, createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'
import {gzipSync} from 'node:zlib'

import type {Plugin} from 'esbuild'

/**
 * A release is built once on the operator's machine: the feed app (app/main.ts, bundled by esbuild into
 * app.cjs), its entry (app.mjs: src/deploy/app-loader.ts) and the process manager (pm.mjs: src/deploy/pm.ts),
 * self-contained files, so hosts run no `npm install`, plus manifest.json and the app's V8 code cache
 * (cache/), packed as one tarball that every host receives byte for byte.
 *
 * Start-up is the floor of every batch of a rolling deploy (each host starts the new app before the next
 * batch may begin), so the release is made to start fast: the code cache is made here by the hosts' own
 * runtime, once the app has loaded every module (app-loader.ts), so no host compiles the bundle, and Node
 * built-ins are loaded with require() (builtinsViaRequire, and app.cjs is CommonJS).
 */

const run = promisify(execFile)

export interface Manifest {
  /** 20261201T075501Z-ab12cd3: UTC build time + git short revision. */
  id: string
  revision: string
  builtAt: string
  /** sha256 of each file of RELEASE_FILES, hex (`sha256sum` lines). */
  sha256: Record<string, string>
  /** Node version the release runs on (runtimes/<version> on the host). */
  runtime: string
  /**
   * The tarball carries cache/, the app's V8 code cache made by this runtime (absent when it could not run
   * here, and when the cache comes after the tarball: Bundle.cache).
   */
  compileCache?: boolean
}

export interface Bundle {
  manifest: Manifest
  /** The unpacked release (what the tarball holds). */
  dir: string
  tarball: string
  /** sha256 of the tarball, hex. */
  tarballSha256: string
  buildMs: number
  /** The RELEASE_FILES came from the previous build: none of their inputs had changed. */
  reused: boolean
  /**
   * With `cacheLater`, a new build's compile cache as a tarball of its own, made once the release's tarball
   * is ready (null: the cache is in the release's tarball, or there is none). Never rejects.
   */
  cache: Promise<CacheTarball | null>
}

export interface CacheTarball {
  /** Holds cache/. */
  tarball: string
  sha256: string
}

/** What esbuild makes: the app's entry, the app, the process manager. */
export const RELEASE_FILES = ['app.mjs', 'app.cjs', 'pm.mjs'] as const

/** The folder holding package.json and app/ (this file runs from src/deploy or dist/src/deploy). */
export function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!existsSync(path.join(dir, 'app', 'main.ts'))) {
    const up = path.dirname(dir)
    if (up === dir) throw new Error('cannot find the project root (app/main.ts)')
    dir = up
  }
  return dir
}

/** UTC time to the second + the short revision (+ `-dirty` for a build of edited sources, as `git describe --dirty`). */
export function releaseId(at: Date, revision: string, dirty = false): string {
  return `${at.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z-${revision.slice(0, 7)}${dirty ? '-dirty' : ''}`
}

/** The commit, and whether tracked files differ from it (what `git describe --dirty` calls dirty). */
async function gitRevision(root: string): Promise<{revision: string; dirty: boolean}> {
  try {
    const revision = (await run('git', ['rev-parse', 'HEAD'], {cwd: root})).stdout.trim()
    const dirty = await run('git', ['diff-index', '--quiet', 'HEAD', '--'], {cwd: root}).then(
      () => false,
      () => true,
    )
    return {revision, dirty}
  } catch {
    return {revision: '0000000', dirty: false}
  }
}

/** Builds the release into <cacheDir>/releases/<id>/ and <id>.tar.gz. */
export async function buildBundle(opts: {
  cacheDir: string
  runtime: string
  root?: string
  /** Build from the sources even when the last build's inputs are all unchanged (`deploy --rebuild`). */
  rebuild?: boolean
  /**
   * A new build's compile cache is made after the release's tarball, and comes as `cache`: a deploy ships the
   * release while the cache is made, and the cache before the switch (it takes a third of a build).
   */
  cacheLater?: boolean
  /** The runtime's node binary on this machine (runtime.ts localRuntimeNode), to make the compile cache with; none: no cache. */
  runtimeNode?: () => Promise<string | null>
}): Promise<Bundle> {
  const started = performance.now()
  const root = opts.root ?? projectRoot()
  const {revision, dirty} = await gitRevision(root)
  const out = path.join(opts.cacheDir, 'releases')
  mkdirSync(out, {recursive: true})
  // Ids are to the second, and each build has a folder of its own: the id is taken by making <id>.tmp (mkdir
  // is atomic), so two builds started together (two deploys, two labs) get two ids, the second one second
  // later, and never write into one folder.
  let at = new Date()
  let tmp: string
  for (;;) {
    tmp = path.join(out, `${releaseId(at, revision, dirty)}.tmp`)
    if (!existsSync(tmp.slice(0, -4)) && tryMkdir(tmp)) break
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5))
    at = new Date()
  }
  const id = releaseId(at, revision, dirty)
  const dir = path.join(out, id)

  const {builds, key} = esbuildOptions(root, tmp, opts.runtimeNode ? opts.runtime : null)
  const reused = !opts.rebuild && reuseLastBuild(out, root, tmp, key)
  // Only a faster start: a runtime that cannot run here (a musl or locked-down machine) leaves the release
  // without it, and the next build is not a reuse of this one, so that it tries again.
  const makeCache = async (release: string): Promise<boolean> => {
    const node = await opts.runtimeNode?.().catch(() => null)
    if (!node) return false
    return makeCompileCache(node, release).then(
      () => true,
      () => {
        rmSync(lastBuildFile(out), {force: true})
        return false
      },
    )
  }
  if (!reused) await bundleInto(out, root, tmp, builds, key)
  // A reused build has the last one's cache, unless that one's CLI died before it was made.
  let cacheLater = false
  if (opts.runtimeNode && !existsSync(path.join(tmp, COMPILE_CACHE))) {
    if (opts.cacheLater) cacheLater = true
    else await makeCache(tmp)
  }
  const compileCache = existsSync(path.join(tmp, COMPILE_CACHE))
  const sha256: Record<string, string> = {}
  for (const f of RELEASE_FILES) sha256[f] = sha256Of(path.join(tmp, f))
  const manifest: Manifest = {id, revision: dirty ? `${revision}-dirty` : revision, builtAt: at.toISOString(), sha256, runtime: opts.runtime, ...(compileCache ? {compileCache} : {})}
  writeFileSync(path.join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  renameSync(tmp, dir)

  const tarball = `${dir}.tar.gz`
  packTarball(dir, [...RELEASE_FILES, 'manifest.json', ...(compileCache ? [COMPILE_CACHE] : [])], `${tarball}.tmp`)
  renameSync(`${tarball}.tmp`, tarball)
  const tarballSha256 = sha256Of(tarball)
  const buildMs = Math.round(performance.now() - started)
  const cache = cacheLater ? makeCache(dir).then((made) => (made ? packCache(dir) : null)).catch(() => null) : Promise.resolve(null)
  pruneBuilds(out, id)
  return {manifest, dir, tarball, tarballSha256, buildMs, reused, cache}
}

function tryMkdir(dir: string): boolean {
  try {
    mkdirSync(dir)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
}

function packCache(dir: string): CacheTarball {
  const tarball = `${dir}.cache.tar.gz`
  packTarball(dir, [COMPILE_CACHE], `${tarball}.tmp`)
  renameSync(`${tarball}.tmp`, tarball)
  return {tarball, sha256: sha256Of(tarball)}
}

/**
 * tar's archive, gzipped at level 1: a third of `tar -z`'s CPU (gzip -6) for a tarball 15% bigger. Made in one
 * go, not streamed (25 ms for 3 MB): a build runs while the CLI connects to every host, whose traffic would
 * make a stream wait an event-loop turn per 64 KB (1.4 s at 48 hosts).
 */
function packTarball(dir: string, files: string[], out: string): void {
  const tar = spawnSync('tar', ['-cf', '-', '-C', dir, ...files], {maxBuffer: 1 << 30})
  if (tar.error) throw tar.error
  if (tar.status !== 0) throw new Error(`tar exited with ${tar.status}: ${tar.stderr.toString().trim()}`)
  writeFileSync(out, gzipSync(tar.stdout, {level: 1}))
}

/** Builds kept in the local cache: what hosts run is on the hosts; these are for reuse and inspection. */
export const KEEP_LOCAL_BUILDS = 5

/**
 * Removes all but the newest KEEP_LOCAL_BUILDS releases (ids sort by time) from the local cache, never the
 * one just built nor the one the last esbuild run wrote (the next build may reuse it). Best effort.
 */
function pruneBuilds(out: string, justBuilt: string): void {
  let keep = new Set([justBuilt])
  try {
    keep.add((JSON.parse(readFileSync(lastBuildFile(out), 'utf8')) as LastBuild).release)
  } catch {}
  try {
    const ids = readdirSync(out).filter((f) => /^\d{8}T\d{6}Z-[0-9a-f]+$/.test(f)).sort().reverse()
    keep = new Set([...keep, ...ids.slice(0, KEEP_LOCAL_BUILDS)])
    for (const id of ids.filter((i) => !keep.has(i))) {
      rmSync(path.join(out, id), {recursive: true, force: true})
      rmSync(path.join(out, `${id}.tar.gz`), {force: true})
      rmSync(path.join(out, `${id}.cache.tar.gz`), {force: true})
    }
  } catch {}
}

/**
 * What the last esbuild run read (every source file and dependency, with its sha256) and where its output
 * is: a release whose inputs are all unchanged reuses the RELEASE_FILES (esbuild's output is a function of
 * its inputs and options) and gets only a new manifest and tarball.
 */
interface LastBuild {
  options: string
  /** Each input's sha256, with the size and mtime it had then: an input whose stat is unchanged is not read again. */
  inputs: Record<string, InputStamp>
  release: string
}

interface InputStamp {
  sha256: string
  size: number
  mtimeMs: number
}

function stampOf(file: string): InputStamp {
  const {size, mtimeMs} = statSync(file)
  return {sha256: sha256Of(file), size, mtimeMs}
}

/** Whether the file still has the content it had (hashed only when its size or mtime moved: 500 files take 0.1 s). */
function unchanged(file: string, was: InputStamp): boolean {
  const {size, mtimeMs} = statSync(file)
  return (size === was.size && mtimeMs === was.mtimeMs) || sha256Of(file) === was.sha256
}

const lastBuildFile = (out: string) => path.join(out, 'last-build.json')
/**
 * In one go, not streamed: the files are a few MB (8 ms), and a build runs while the CLI connects to every
 * host, whose traffic would make a stream wait an event-loop turn per chunk (1.4 s at 48 hosts).
 */
const sha256Of = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')

/** esbuild's version, read without loading esbuild (a reused build never needs it). */
function esbuildVersion(): string {
  return (JSON.parse(readFileSync(createRequire(import.meta.url).resolve('esbuild/package.json'), 'utf8')) as {version: string}).version
}

/** The release's compile cache folder (app-loader.ts reads the app's V8 code cache from it). */
export const COMPILE_CACHE = 'cache'

/**
 * Runs the new app once (`--help`: every module loaded, nothing connected) on the hosts' runtime, which then
 * writes its V8 code cache (app-loader.ts), holding the code of every module the app loads. Only the
 * runtime's own flags: V8 accepts a cache made under the same version and flags, and rejects any other.
 */
async function makeCompileCache(node: string, dir: string): Promise<void> {
  // made aside and renamed into place: a build that dies half-way leaves no half cache for the next to reuse
  const into = path.join(dir, `${COMPILE_CACHE}.tmp`)
  rmSync(into, {recursive: true, force: true})
  mkdirSync(into)
  try {
    const env = {PATH: process.env.PATH ?? '/usr/bin:/bin', FEEDOPS_CODE_CACHE_OUT: into}
    await run(node, [path.join(dir, 'app.mjs'), '--help'], {cwd: dir, env, timeout: 60_000})
    if (readdirSync(into).length === 0) throw new Error('the app wrote no code cache')
    // Readable by all; under systemd the app runs as another user than the one who unpacks the release.
    for (const f of readdirSync(into, {recursive: true, withFileTypes: true})) {
      chmodSync(path.join(f.parentPath, f.name), f.isDirectory() ? 0o755 : 0o644)
    }
    renameSync(into, path.join(dir, COMPILE_CACHE))
  } finally {
    rmSync(into, {recursive: true, force: true})
  }
}

/**
 * Node built-ins imported by our ESM sources are loaded through require() (what the bundle's CommonJS
 * dependencies do anyway): an ESM import of a built-in makes Node build its ESM facade, which reads every
 * export, and node:http's lazy WebSocket exports then load undici, ~50 ms of every start.
 */
const builtins = new Set(builtinModules)
const BUILTIN = 'builtin'
const builtinsViaRequire: Plugin = {
  name: 'builtins-via-require-1',
  setup(b) {
    b.onResolve({filter: /^(node:)?[a-z_/]+$/}, (a) =>
      a.kind === 'import-statement' && builtins.has(a.path.replace(/^node:/, '')) ? {path: a.path, namespace: BUILTIN} : undefined,
    )
    b.onLoad({filter: /.*/, namespace: BUILTIN}, (a) => ({contents: `module.exports = require(${JSON.stringify(a.path)})`, loader: 'js'}))
  },
}

/** The app's entry in a release, part of feedops rather than of the project it builds (bundle.test.ts builds others). */
function appLoaderSource(): string {
  const here = path.dirname(fileURLToPath(import.meta.url))
  const found = ['app-loader.js', 'app-loader.ts'].map((f) => path.join(here, f)).find((f) => existsSync(f))
  if (!found) throw new Error(`cannot find app-loader.js beside ${here}`)
  return found
}

/**
 * Two esbuild runs: the app as CommonJS (app.cjs: app-loader.ts runs it as a script, the only kind V8 can
 * cache after it ran), and the entry and the process manager as ESM (app.mjs, pm.mjs: the names hosts and
 * units start, from releases of before and after app.cjs alike).
 */
function esbuildOptions(root: string, outdir: string, cacheRuntime: string | null) {
  const version = esbuildVersion()
  const common = {
    absWorkingDir: root,
    outdir,
    bundle: true,
    platform: 'node' as const,
    target: 'node22',
    minify: true,
    legalComments: 'none' as const,
    logLevel: 'error' as const,
    metafile: true,
  }
  const app = {
    ...common,
    entryPoints: {app: path.join('app', 'main.ts')},
    outExtension: {'.js': '.cjs'},
    format: 'cjs' as const,
    // pg's optional native binding is never used.
    external: ['pg-native'],
    // import.meta.url as ESM has it (main.ts reads manifest.json beside it).
    define: {'import.meta.url': '__feedopsUrl'},
    banner: {js: "var __feedopsUrl=require('node:url').pathToFileURL(__filename).href;"},
    plugins: [] as Plugin[],
  }
  const entryAndPm = {
    ...common,
    entryPoints: {app: appLoaderSource(), pm: path.join('src', 'deploy', 'pm.ts')},
    outExtension: {'.js': '.mjs'},
    format: 'esm' as const,
    // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
    banner: {js: "import {createRequire as __feedopsRequire} from 'node:module';const require=__feedopsRequire(import.meta.url);"},
    plugins: [builtinsViaRequire],
  }
  const keyOf = ({outdir: _o, plugins, ...rest}: typeof app | typeof entryAndPm) => ({plugins: plugins.map((p) => p.name), ...rest})
  // How packages resolve and how TypeScript is read are inputs too, though not files esbuild lists.
  const settings = ['package-lock.json', 'tsconfig.json'].map((f) => (existsSync(path.join(root, f)) ? sha256Of(path.join(root, f)) : ''))
  // The compile cache is made by one runtime: another runtime needs a new one.
  return {builds: [app, entryAndPm], key: JSON.stringify({esbuild: version, settings, cacheRuntime, builds: [keyOf(app), keyOf(entryAndPm)]})}
}

async function bundleInto(out: string, root: string, tmp: string, builds: ReturnType<typeof esbuildOptions>['builds'], key: string): Promise<void> {
  const {build} = await import('esbuild')
  const results = await Promise.all(builds.map((b) => build(b)))
  const files = results.flatMap((r) => Object.keys(r.metafile?.inputs ?? {})).filter((f) => !f.startsWith(`${BUILTIN}:`)) // not files: builtinsViaRequire's
  const inputs = Object.fromEntries(files.map((f) => [f, stampOf(path.join(root, f))]))
  const record: LastBuild = {options: key, inputs, release: path.basename(tmp, '.tmp')}
  // A temp name of this process's own: two builds at once never write into one file.
  writeFileSync(`${lastBuildFile(out)}.${process.pid}.tmp`, JSON.stringify(record))
  renameSync(`${lastBuildFile(out)}.${process.pid}.tmp`, lastBuildFile(out))
}

function reuseLastBuild(out: string, root: string, tmp: string, key: string): boolean {
  let last: LastBuild
  try {
    last = JSON.parse(readFileSync(lastBuildFile(out), 'utf8')) as LastBuild
  } catch {
    return false
  }
  if (last.options !== key || Object.keys(last.inputs).length === 0) return false
  const prev = path.join(out, last.release)
  if (!RELEASE_FILES.every((f) => existsSync(path.join(prev, f)))) return false
  try {
    for (const [f, was] of Object.entries(last.inputs)) if (!unchanged(path.join(root, f), was)) return false
  } catch {
    return false // an input is gone
  }
  for (const f of RELEASE_FILES) copyFileSync(path.join(prev, f), path.join(tmp, f))
  if (existsSync(path.join(prev, COMPILE_CACHE))) cpSync(path.join(prev, COMPILE_CACHE), path.join(tmp, COMPILE_CACHE), {recursive: true})
  return true
}
