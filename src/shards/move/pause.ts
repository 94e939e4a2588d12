import {setTimeout as sleep} from 'node:timers/promises'

/**
 * Fault-injection points for the move's tests: with FEEDOPS_MOVE_PAUSE=<point>[:<ms>][,…] the move stops at
 * that point (says so on stderr) and waits there until it is killed, or for <ms> when given, so a test can
 * kill the CLI, or a server, or hold a lock, at a known place. Points: copy (subscription made), catch-up,
 * frozen (shard frozen and fenced), before-flip (caught up, sequences set, just before the flip), flipped
 * (the map just switched, before anything after it).
 */
export type PausePoint = 'copy' | 'catch-up' | 'frozen' | 'before-flip' | 'flipped'

export async function pauseAt(point: PausePoint): Promise<void> {
  const wanted = (process.env.FEEDOPS_MOVE_PAUSE?.split(',') ?? []).map((w) => w.split(':'))
  const hit = wanted.find(([name]) => name === point)
  if (!hit) return
  process.stderr.write(`feedops: move paused at ${point} (FEEDOPS_MOVE_PAUSE)\n`)
  await sleep(hit[1] === undefined ? 3_600_000 : Number(hit[1]))
}
