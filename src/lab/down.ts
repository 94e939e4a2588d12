import {existsSync} from 'node:fs'
import path from 'node:path'

import {acquireLabLock} from './lock.js'
import {readState, writeState} from './state.js'
import {statusOf, type LabStatus} from './status.js'
import {stopRecord} from './up.js'

/**
 * Stops exactly the processes state.json records, by pid, after checking each is still the
 * process that was started. Removes no file: data dirs, host folders and keys stay for the next up.
 */
export async function labDown(dir: string): Promise<LabStatus> {
  const abs = path.resolve(dir)
  const state = existsSync(abs) ? readState(abs) : undefined
  if (!state) return statusOf(abs, undefined)
  const release = acquireLabLock(abs)
  try {
    await Promise.all(state.processes.map((r) => stopRecord(abs, r).catch(() => 'failed')))
    writeState(abs, state)
    return statusOf(abs, state)
  } finally {
    release()
  }
}
