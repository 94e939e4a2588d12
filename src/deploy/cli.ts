import {Flags} from '@oclif/core'

import type {LoadedConfig} from '../config/load.js'
import {hostProgress} from '../cli/progress.js'
import {ExitCode} from '../errors.js'
import {openSession, parseIntegerOption, trapInterrupts} from '../ssh/session.js'
import {deploySettings, runDeploy, type DeployResult} from './run.js'

/** What `feedops deploy` and `feedops rollback` share: their flags and the run with progress and Ctrl-C. */

export const rollingFlags = {
  role: Flags.string({description: 'Hosts with this role (default: deploy.role, app).'}),
  batch: Flags.string({description: 'Rolling batches: host counts or percentages, canary first; the last repeats (default: deploy.batch, 1,25%,50%).'}),
  'max-fail': Flags.string({description: 'Failed hosts tolerated before stopping and rolling back: N or N% (default: deploy.maxFail, 0).'}),
  'lock-wait': Flags.string({description: 'Wait up to S seconds for another run to release the lock (default: 0, exit 3 at once).'}),
  'force-unlock': Flags.boolean({description: 'Break the lock if it is stale (its heartbeat is older than deploy.lockStaleSeconds).'}),
  'dry-run': Flags.boolean({description: 'Print the plan (release, batches, steps) and change nothing anywhere.'}),
  'skip-unreachable': Flags.boolean({description: 'Leave out hosts unreachable at preflight instead of refusing.'}),
  message: Flags.string({char: 'm', description: 'Why: kept with the lock and in the audit log.'}),
  'accept-new': Flags.boolean({description: 'Record the key of a host not yet in known_hosts instead of refusing it.'}),
}

export interface RollingFlags {
  role?: string
  batch?: string
  'max-fail'?: string
  'lock-wait'?: string
  'force-unlock'?: boolean
  'dry-run'?: boolean
  'skip-unreachable'?: boolean
  message?: string
  'accept-new'?: boolean
}

export async function runRolling(
  loaded: LoadedConfig,
  flags: RollingFlags,
  action: 'deploy' | 'rollback',
  out: {interactive: boolean; json: boolean; to?: string},
): Promise<DeployResult> {
  const lockWaitS = parseIntegerOption(flags['lock-wait'], '--lock-wait', {min: 0, max: 86_400})
  const settings = deploySettings(loaded.env)
  const {hosts, pool} = await openSession(loaded.env, {role: flags.role ?? settings.role, acceptNew: flags['accept-new'] ?? false})
  const progress = await hostProgress(
    hosts.map((h) => h.name),
    {enabled: out.interactive && !flags['dry-run']},
  )
  const plain = !out.json && !out.interactive
  const trap = trapInterrupts((sig) => {
    if (!out.json) process.stderr.write(`\n${sig === 'SIGINT' ? 'Interrupted' : 'Terminated'}: no new host starts; hosts in flight finish or are switched back (again to quit at once)\n`)
  })
  try {
    const result = await runDeploy({
      loaded,
      hosts,
      pool,
      action,
      ...(out.to ? {to: out.to} : {}),
      ...(flags.batch ? {batch: flags.batch} : {}),
      ...(flags['max-fail'] ? {maxFail: flags['max-fail']} : {}),
      ...(lockWaitS !== undefined ? {lockWaitS} : {}),
      forceUnlock: flags['force-unlock'] ?? false,
      dryRun: flags['dry-run'] ?? false,
      skipUnreachable: flags['skip-unreachable'] ?? false,
      ...(flags.message ? {message: flags.message} : {}),
      signal: trap.signal,
      onHost: (host, text, done) => (done ? progress.done(host, done.ok, text) : progress.update(host, text)),
      onLine: (line) => {
        if (plain) process.stderr.write(`${line}\n`)
      },
    })
    if (trap.received) process.exitCode = 130
    else if (!result.ok) process.exitCode = ExitCode.failed
    return result
  } finally {
    trap.dispose()
    await progress.finish()
    pool.close()
  }
}
