import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import {hashFile} from './runtime.js'

/**
 * A release is built once on the operator's machine: the feed app (app/main.ts) and the process manager
 * (src/deploy/pm.ts) bundled by esbuild into two self-contained files, so hosts run no `npm install`,
 * plus manifest.json, packed as one tarball that every host receives byte for byte.
 */

const run = promisify(execFile)

export interface Manifest {
  /** 20261201T075501Z-ab12cd3: UTC build time + git short revision. */
  id: string
  revision: string
  builtAt: string
  /** sha256 of app.mjs and pm.mjs, in that order, hex (`sha256sum` lines). */
  sha256: Record<string, string>
  /** Node version the release runs on (runtimes/<version> on the host). */
  runtime: string
  /**
   * Test-only: a release made to misbehave (from $FEEDOPS_DEPLOY_FAULT at build time): `unready` never passes
   * /readyz, `crash` exits soon after its first ready answer, `keep-old` restarts without stopping the old process.
   */
  fault?: 'unready' | 'crash' | 'keep-old'
}

export interface Bundle {
  manifest: Manifest
  /** The unpacked release (what the tarball holds). */
  dir: string
  tarball: string
  /** sha256 of the tarball, hex. */
  tarballSha256: string
  buildMs: number
  /** app.mjs and pm.mjs came from the previous build: none of their inputs had changed. */
  reused: boolean
}

export const FAULTS = ['unready', 'crash', 'keep-old'] as const

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

/** UTC time to the second + the short revision. */
export function releaseId(at: Date, revision: string): string {
  return `${at.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z-${revision.slice(0, 7)}`
}

async function gitRevision(root: string): Promise<string> {
  try {
    return (await run('git', ['rev-parse', 'HEAD'], {cwd: root})).stdout.trim()
  } catch {
    return '0000000'
  }
}

/** Builds the release into <cacheDir>/releases/<id>/ and <id>.tar.gz. */
export async function buildBundle(opts: {cacheDir: string; runtime: string; root?: string; fault?: string | undefined}): Promise<Bundle> {
  const started = performance.now()
  const root = opts.root ?? projectRoot()
  const fault = opts.fault && (FAULTS as readonly string[]).includes(opts.fault) ? (opts.fault as Manifest['fault']) : undefined
  const revision = await gitRevision(root)
  const out = path.join(opts.cacheDir, 'releases')
  mkdirSync(out, {recursive: true})
  // Ids are to the second: two builds in the same second wait for the next one.
  let at = new Date()
  while (existsSync(path.join(out, releaseId(at, revision)))) {
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5))
    at = new Date()
  }
  const id = releaseId(at, revision)
  const dir = path.join(out, id)
  const tmp = `${dir}.tmp`
  rmSync(tmp, {recursive: true, force: true})
  mkdirSync(tmp, {recursive: true})

  const {options, key} = esbuildOptions(root, tmp)
  const reused = reuseLastBuild(out, root, tmp, key)
  if (!reused) await bundleInto(out, root, options, key)
  const sha256: Record<string, string> = {}
  for (const f of ['app.mjs', 'pm.mjs']) sha256[f] = (await hashFile(path.join(tmp, f), 'sha256')).hex
  const manifest: Manifest = {id, revision, builtAt: at.toISOString(), sha256, runtime: opts.runtime, ...(fault ? {fault} : {})}
  writeFileSync(path.join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  renameSync(tmp, dir)

  const tarball = `${dir}.tar.gz`
  await run('tar', ['-czf', `${tarball}.tmp`, '-C', dir, 'app.mjs', 'pm.mjs', 'manifest.json'])
  renameSync(`${tarball}.tmp`, tarball)
  const tarballSha256 = (await hashFile(tarball, 'sha256')).hex
  return {manifest, dir, tarball, tarballSha256, buildMs: Math.round(performance.now() - started), reused}
}

/**
 * What the last esbuild run read (every source file and dependency, with its sha256) and where its output
 * is: a release whose inputs are all unchanged reuses app.mjs and pm.mjs (esbuild's output is a function of
 * its inputs and options) and gets only a new manifest and tarball.
 */
interface LastBuild {
  options: string
  inputs: Record<string, string>
  release: string
}

const lastBuildFile = (out: string) => path.join(out, 'last-build.json')
const sha256Of = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')

/** esbuild's version, read without loading esbuild (a reused build never needs it). */
function esbuildVersion(): string {
  return (JSON.parse(readFileSync(createRequire(import.meta.url).resolve('esbuild/package.json'), 'utf8')) as {version: string}).version
}

function esbuildOptions(root: string, outdir: string) {
  const version = esbuildVersion()
  const options = {
    entryPoints: {app: path.join('app', 'main.ts'), pm: path.join('src', 'deploy', 'pm.ts')},
    absWorkingDir: root,
    outdir,
    outExtension: {'.js': '.mjs'},
    bundle: true,
    platform: 'node' as const,
    format: 'esm' as const,
    target: 'node22',
    minify: true,
    legalComments: 'none' as const,
    // pg's optional native binding is never used.
    external: ['pg-native'],
    // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
    banner: {js: "import {createRequire as __feedopsRequire} from 'node:module';const require=__feedopsRequire(import.meta.url);"},
    logLevel: 'error' as const,
    metafile: true,
  }
  const {outdir: _o, ...rest} = options
  // How packages resolve and how TypeScript is read are inputs too, though not files esbuild lists.
  const settings = ['package-lock.json', 'tsconfig.json'].map((f) => (existsSync(path.join(root, f)) ? sha256Of(path.join(root, f)) : ''))
  return {options, key: JSON.stringify({esbuild: version, settings, ...rest})}
}

async function bundleInto(out: string, root: string, options: ReturnType<typeof esbuildOptions>['options'], key: string): Promise<void> {
  const {build} = await import('esbuild')
  const result = await build(options)
  const inputs = Object.fromEntries(Object.keys(result.metafile?.inputs ?? {}).map((f) => [f, sha256Of(path.join(root, f))]))
  const record: LastBuild = {options: key, inputs, release: path.basename(options.outdir, '.tmp')}
  writeFileSync(`${lastBuildFile(out)}.tmp`, JSON.stringify(record))
  renameSync(`${lastBuildFile(out)}.tmp`, lastBuildFile(out))
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
  if (!existsSync(path.join(prev, 'app.mjs')) || !existsSync(path.join(prev, 'pm.mjs'))) return false
  try {
    for (const [f, sum] of Object.entries(last.inputs)) if (sha256Of(path.join(root, f)) !== sum) return false
  } catch {
    return false // an input is gone
  }
  for (const f of ['app.mjs', 'pm.mjs']) copyFileSync(path.join(prev, f), path.join(tmp, f))
  return true
}
