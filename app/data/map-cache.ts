import {EventEmitter, once} from 'node:events'
import {setTimeout as sleep} from 'node:timers/promises'

import type {Redis} from 'ioredis'
import type pg from 'pg'

import {readMapVersion, readShardMap, type ShardMap, type ShardState} from '../../src/shards/catalog.js'
import {subscribeMapVersion} from '../../src/shards/map-events.js'
import type {Logger} from '../logger.js'
import {groupBy} from './context.js'

/** A write waited for a frozen logical shard longer than the app's bound. */
export class ShardFrozenError extends Error {
  override readonly name = 'ShardFrozenError'
  constructor(
    readonly shard: number,
    readonly waitedMs: number,
  ) {
    super(`logical shard ${shard} is frozen for a move; try again shortly`)
  }
}

interface Entry {
  server: string
  state: ShardState
  /** While frozen: when the freeze's lease runs out (Date.now() clock); writes go ahead from then on. */
  thawAt?: number
}

/**
 * The app's copy of the logical→physical shard map. It learns of a change within about a second: a Redis
 * subscription to MAP_CHANNEL (fast path) plus a poll of the catalog's map version (fallback for a missed
 * message or a Redis outage). Writes to a frozen shard wait here for the thaw, up to a bound.
 */
export class ShardMapCache extends EventEmitter {
  private map: ShardMap | undefined
  private entries: Entry[] = []
  private byServer = new Map<string, number[]>()
  private refreshing: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private subscriber: Redis | undefined
  private stopped = false

  constructor(
    private readonly catalog: pg.Pool,
    private readonly opts: {pollMs: number; log: Logger; redis?: Redis},
  ) {
    super()
    this.setMaxListeners(0)
  }

  async start(): Promise<void> {
    await this.reload()
    if (this.opts.redis) {
      // A subscribed connection can run nothing else, so it gets its own.
      const sub = this.opts.redis.duplicate()
      this.subscriber = sub
      sub.on('error', (err: Error) => this.opts.log.warn({err: err.message}, 'shard map subscription error'))
      await subscribeMapVersion(sub, (version) => {
        if (version !== this.version) void this.refresh()
      })
    }
    const tick = () => {
      if (this.stopped) return
      void this.refresh().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.opts.pollMs).unref()
      })
    }
    this.timer = setTimeout(tick, this.opts.pollMs).unref()
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.refreshing?.catch(() => undefined)
    if (this.subscriber) {
      this.subscriber.disconnect()
      this.subscriber = undefined
    }
  }

  get loaded(): boolean {
    return this.map !== undefined
  }

  get version(): number {
    return this.map?.version ?? -1
  }

  current(): ShardMap {
    if (!this.map) throw new Error('the shard map is not loaded yet')
    return this.map
  }

  get logical(): number {
    return this.current().logical
  }

  serverOf(shard: number): string {
    const e = this.entries[shard]
    if (!e) throw new RangeError(`logical shard ${shard} is not in the shard map (version ${this.version})`)
    return e.server
  }

  /** The logical shards a physical server holds, ascending (empty for a server that holds none). */
  shardsOn(server: string): readonly number[] {
    return this.byServer.get(server) ?? []
  }

  /** Physical servers that hold at least one logical shard. */
  serversInUse(): string[] {
    return [...new Set(this.entries.filter(Boolean).map((e) => e.server))].sort()
  }

  /**
   * The server to write a shard's rows to. While the shard is frozen it waits (re-reading the catalog every
   * 100 ms, and at once on a map message) up to maxWaitMs, then throws ShardFrozenError.
   */
  async writableServer(shard: number, maxWaitMs: number): Promise<string> {
    const started = Date.now()
    for (;;) {
      const e = this.entries[shard]
      if (!e) throw new RangeError(`logical shard ${shard} is not in the shard map (version ${this.version})`)
      if (e.state !== 'frozen' || (e.thawAt !== undefined && Date.now() >= e.thawAt)) return e.server
      const left = started + maxWaitMs - Date.now()
      if (left <= 0) throw new ShardFrozenError(shard, Date.now() - started)
      const ac = new AbortController()
      await Promise.race([sleep(Math.min(100, left), undefined, {signal: ac.signal}), once(this, 'change', {signal: ac.signal})]).catch(
        () => undefined,
      )
      ac.abort()
      await this.refresh().catch((err: Error) => this.opts.log.warn({err: err.message}, 'shard map refresh failed'))
    }
  }

  /** Re-reads the map when the catalog's version differs from ours. Concurrent callers share one read. */
  refresh(): Promise<void> {
    this.refreshing ??= this.checkVersion().finally(() => {
      this.refreshing = undefined
    })
    return this.refreshing
  }

  /** Never throws: a catalog outage keeps the last map (reads go on) and is logged. */
  private async checkVersion(): Promise<void> {
    let client: pg.PoolClient | undefined
    try {
      client = await this.catalog.connect()
      const version = await readMapVersion(client)
      if (version !== this.version) this.install(await readShardMap(client))
    } catch (err) {
      this.opts.log.warn({err: (err as Error).message}, 'shard map version check failed')
    } finally {
      client?.release()
    }
  }

  private async reload(): Promise<void> {
    const client = await this.catalog.connect()
    try {
      this.install(await readShardMap(client))
    } finally {
      client.release()
    }
  }

  private install(map: ShardMap): void {
    const entries: Entry[] = []
    const now = Date.now()
    for (const s of map.shards) {
      entries[s.shard] = {server: s.server, state: s.state, ...(s.frozenMs === undefined ? {} : {thawAt: now + s.frozenMs})}
    }
    const previous = this.map?.version
    // map.shards is in shard order (readShardMap), so each server's list is ascending.
    const byServer = new Map([...groupBy(map.shards, (s) => s.server)].map(([server, list]) => [server, list.map((s) => s.shard)]))
    this.map = map
    this.entries = entries
    this.byServer = byServer
    if (previous !== undefined) this.opts.log.info({from: previous, to: map.version}, 'shard map changed')
    this.emit('change', map)
  }
}
