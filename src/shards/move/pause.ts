import {setTimeout as sleep} from 'node:timers/promises'

/**
 * Fault-injection points for the move's tests: with FEEDOPS_MOVE_PAUSE=<point>[,<point>…] the move stops
 * at that point (says so on stderr) and waits there until it is killed, so a test can kill the CLI, or a
 * server, at a known place. Points: copy (subscription made), catch-up, frozen (shard frozen and fenced),
 * flipped (the map just switched, before anything after it).
 */
export type PausePoint = 'copy' | 'catch-up' | 'frozen' | 'flipped'

export async function pauseAt(point: PausePoint): Promise<void> {
  const wanted = process.env.FEEDOPS_MOVE_PAUSE?.split(',') ?? []
  if (!wanted.includes(point)) return
  process.stderr.write(`feedops: move paused at ${point} (FEEDOPS_MOVE_PAUSE)\n`)
  await sleep(3_600_000)
}
