import type {Redis} from 'ioredis'
import type pg from 'pg'

import type {MoveSettings, ShardsSettings} from '../../config/schema.js'
import {publishMapVersion} from '../map-events.js'
import type {ServerPools} from '../pools.js'
import type {MoveJob} from './jobs.js'

/** What every move operation needs: connections and settings. */
export interface MoveEnv {
  pools: ServerPools
  settings: ShardsSettings
  moves: MoveSettings
  /** For announcing map changes; without it app instances learn of them by polling. */
  redis?: Redis
}

export interface Side {
  name: string
  url: string
  pool: pg.Pool
}

/** One job being worked on by this process (it holds the shard's move lock). */
export interface MoveRun {
  env: MoveEnv
  job: MoveJob
  shard: number
  schema: string
  source: Side
  target: Side
  /** The catalog session holding the shard's move lock. */
  catalog: pg.ClientBase
  /** What the current phase is doing, for progress. */
  say(text: string): void
  signal?: AbortSignal
}

export function side(env: MoveEnv, name: string): Side {
  const s = env.settings.servers.find((x) => x.name === name)
  if (!s) throw new RangeError(`server ${name} is not in env.shards.servers`)
  return {name, url: s.url, pool: env.pools.pool(name)}
}

export async function announce(env: MoveEnv, version: number): Promise<void> {
  if (env.redis) await publishMapVersion(env.redis, version).catch(() => undefined)
}

export class MoveInterrupted extends Error {
  override readonly name = 'MoveInterrupted'
  constructor() {
    super('interrupted')
  }
}

export function checkSignal(run: {signal?: AbortSignal}): void {
  if (run.signal?.aborted) throw new MoveInterrupted()
}
