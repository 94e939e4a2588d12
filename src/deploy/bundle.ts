import {execFile} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
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

  const {build} = await import('esbuild')
  await build({
    entryPoints: {app: path.join(root, 'app', 'main.ts'), pm: path.join(root, 'src', 'deploy', 'pm.ts')},
    outdir: tmp,
    outExtension: {'.js': '.mjs'},
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    legalComments: 'none',
    // pg's optional native binding is never used.
    external: ['pg-native'],
    // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
    banner: {js: "import {createRequire as __feedopsRequire} from 'node:module';const require=__feedopsRequire(import.meta.url);"},
    logLevel: 'error',
  })
  const sha256: Record<string, string> = {}
  for (const f of ['app.mjs', 'pm.mjs']) sha256[f] = (await hashFile(path.join(tmp, f), 'sha256')).hex
  const manifest: Manifest = {id, revision, builtAt: at.toISOString(), sha256, runtime: opts.runtime, ...(fault ? {fault} : {})}
  writeFileSync(path.join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  renameSync(tmp, dir)

  const tarball = `${dir}.tar.gz`
  await run('tar', ['-czf', `${tarball}.tmp`, '-C', dir, 'app.mjs', 'pm.mjs', 'manifest.json'])
  renameSync(`${tarball}.tmp`, tarball)
  const tarballSha256 = (await hashFile(tarball, 'sha256')).hex
  return {manifest, dir, tarball, tarballSha256, buildMs: Math.round(performance.now() - started)}
}

export function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest
}
