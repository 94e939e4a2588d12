/**
 * Runs `work` (a deploy) while test/support/load/process.ts sends its load through the NGINX nodes, from a
 * process of its own: the load reaches its steady state first and runs on a little after, so requests to the
 * last hosts restarted are counted too.
 */
import {spawn} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {fileURLToPath} from 'node:url'

import type {LoadPlan, LoadResult} from './process.js'

const processScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'process.js')

export async function underLoad<T>(
  plan: LoadPlan,
  opts: {planFile: string; connections: number; warmupMs: number; cooldownMs: number; maxSeconds: number},
  work: () => Promise<T>,
): Promise<{value: T; load: LoadResult}> {
  writeFileSync(opts.planFile, JSON.stringify(plan))
  const child = spawn(process.execPath, [processScript, '--plan', opts.planFile, '--connections', String(opts.connections), '--max-seconds', String(opts.maxSeconds)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  try {
    await sleep(opts.warmupMs)
    const value = await work()
    await sleep(opts.cooldownMs)
    child.kill('SIGTERM')
    if ((await exited) !== 0) throw new Error('the load process failed')
    return {value, load: JSON.parse(out) as LoadResult}
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
}
