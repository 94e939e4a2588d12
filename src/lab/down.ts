import {existsSync, readFileSync, rmSync} from 'node:fs'
import path from 'node:path'

import {LAB_DEPLOY_DIR} from './config-writer.js'
import {labPaths} from './layout.js'

import {acquireLabLock} from './lock.js'
import {readState, writeState} from './state.js'
import {statusOf, type LabStatus} from './status.js'
import {stopProcess, type ProcessIdentity} from './process.js'
import {stopRecord} from './up.js'

/**
 * Stops exactly the processes state.json records, by pid, after checking each is still the
 * process that was started, and the apps deploys started on the lab hosts (the pid file of the release's
 * process manager, checked the same way). Keeps data dirs, host folders and keys for the next up.
 */
export async function labDown(dir: string): Promise<LabStatus> {
  const abs = path.resolve(dir)
  const state = existsSync(abs) ? readState(abs) : undefined
  if (!state) return statusOf(abs, undefined)
  const release = acquireLabLock(abs)
  try {
    // The apps first: they hold connections to the lab's databases.
    await Promise.all(hostNames(state).map((h) => stopDeployedApp(labPaths.hostRoot(abs, h)).catch(() => 'failed')))
    await Promise.all(state.processes.map((r) => stopRecord(abs, r).catch(() => 'failed')))
    writeState(abs, state)
    return statusOf(abs, state)
  } finally {
    release()
  }
}

function hostNames(state: NonNullable<ReturnType<typeof readState>>): string[] {
  return state.processes.filter((r) => r.component === 'sshd').map((r) => r.name)
}

/** The app a deploy started on a lab host (shared/app.pid, written by src/deploy/pm.ts). */
async function stopDeployedApp(hostRoot: string): Promise<void> {
  const pidFile = path.join(hostRoot, LAB_DEPLOY_DIR, 'shared', 'app.pid')
  if (!existsSync(pidFile)) return
  const id = JSON.parse(readFileSync(pidFile, 'utf8')) as ProcessIdentity
  await stopProcess(id, {timeoutMs: 5000})
  rmSync(pidFile, {force: true})
}
