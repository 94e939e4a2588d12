import {Flags} from '@oclif/core'

import type {LoadedConfig} from '../config/load.js'
import {hostFlags, hostsWithRole, selectionFlags, type HostFlagValues} from '../cli/host-flags.js'
import {withHostSession} from '../cli/host-session.js'
import {progressMode, withProgress} from '../cli/progress.js'
import {ExitCode} from '../errors.js'
import {checkAppConfig} from './app-config.js'
import {deploySettings, runDeploy, type DeployResult} from './run.js'
import {UserError} from '../errors.js'

/** What `feedops deploy` and `feedops rollback` share: their flags, and the run with progress and Ctrl-C. */

export const rollingFlags = {
  ...selectionFlags,
  role: Flags.string({char: 'r', description: 'Hosts with this role (default: deploy.role, app).'}),
  concurrency: hostFlags.concurrency,
  'connect-timeout': hostFlags['connect-timeout'],
  'accept-new': hostFlags['accept-new'],
  batch: Flags.string({description: 'Rolling batches: host counts or percentages, canary first; the last repeats (default: deploy.batch, 1,25%,50%).'}),
  'max-fail': Flags.string({description: 'Failed hosts tolerated before stopping and rolling back: N or N% (default: deploy.maxFail, 0).'}),
  'lock-wait': Flags.integer({min: 0, max: 86_400, description: 'Wait up to S seconds for another run to release the lock (default: 0, exit 3 at once).'}),
  'force-unlock': Flags.boolean({description: 'Break the lock if it is stale (its heartbeat is older than deploy.lockStaleSeconds).'}),
  'dry-run': Flags.boolean({description: 'Print the plan (release, batches, steps) and change nothing anywhere.'}),
  'skip-unreachable': Flags.boolean({description: 'Leave out hosts unreachable at preflight instead of refusing.'}),
  message: Flags.string({char: 'm', description: 'Why: kept with the lock and in the audit log.'}),
  bake: Flags.integer({
    min: 0,
    max: 3600,
    description: 'Seconds the whole fleet is watched after the last batch (same release, same pid, every second) before the run says done; 0: no bake, and the canary passes on health.stableMs (default: deploy.bakeSeconds, 10).',
  }),
}

export interface RollingFlags extends HostFlagValues {
  batch?: string | undefined
  'max-fail'?: string | undefined
  'lock-wait'?: number | undefined
  'force-unlock'?: boolean | undefined
  'dry-run'?: boolean | undefined
  'skip-unreachable'?: boolean | undefined
  message?: string | undefined
  rebuild?: boolean | undefined
  bake?: number | undefined
}

export async function runRolling(loaded: LoadedConfig, flags: RollingFlags, action: 'deploy' | 'rollback', out: {json: boolean; to?: string}): Promise<DeployResult> {
  // Before any host is touched: a blank --to is not "no --to".
  if (out.to !== undefined && out.to.trim() === '') {
    throw new UserError('--to is empty.', {fix: 'Name a release (see `feedops releases`), or leave --to out to go back in history.'})
  }
  const role = deploySettings(loaded.env).role
  // A config the app would refuse is refused before any host is reached (runDeploy checks each host's own).
  if (action === 'deploy') checkAppConfig(loaded, [{name: 'app', address: '127.0.0.1', roles: [role]}])
  const {value, interrupted} = await withHostSession(
    loaded.env,
    flags,
    {quiet: out.json, defaultSelection: hostsWithRole(role, `deploy.role in ${loaded.file}`)},
    async ({hosts, inventory, pool, signal, concurrency}) => {
      const lockHost = inventory.find((h) => h.roles.includes(role)) ?? hosts[0]!
      const mode = flags['dry-run'] ? 'off' : progressMode(out.json)
      return withProgress(
        hosts.map((h) => h.name),
        mode,
        (progress) =>
          runDeploy({
            loaded,
            hosts,
            lockHost,
            pool,
            action,
            concurrency,
            ...(out.to !== undefined ? {to: out.to} : {}),
            ...(flags.bake !== undefined ? {bakeSeconds: flags.bake} : {}),
            ...(flags.batch !== undefined ? {batch: flags.batch} : {}),
            ...(flags['max-fail'] !== undefined ? {maxFail: flags['max-fail']} : {}),
            ...(flags['lock-wait'] !== undefined ? {lockWaitS: flags['lock-wait']} : {}),
            forceUnlock: flags['force-unlock'] ?? false,
            dryRun: flags['dry-run'] ?? false,
            skipUnreachable: flags['skip-unreachable'] ?? false,
            ...(flags.message ? {message: flags.message} : {}),
            rebuild: flags.rebuild ?? false,
            // In-flight steps are not cut on Ctrl-C: the run finishes them or switches the host back.
            signal,
            onHost: (host, text, done) => (done ? progress.done(host, done.ok, text) : progress.update(host, text)),
          }),
      )
    },
  )
  if (interrupted || value.stopped === 'interrupted') process.exitCode = ExitCode.interrupted
  else if (!value.ok) process.exitCode = ExitCode.failed
  return value
}
