import {setTimeout as sleep} from 'node:timers/promises'

import {isFenceError} from '../../src/shards/fence.js'
import {pgCode, type DataContext} from './context.js'
import {ShardFrozenError} from './map-cache.js'

/**
 * Runs a write against the server the map names for the shard, waiting out a freeze (writableServer).
 * When that server refuses it because the shard's copy there is fenced (it moved, or is switching right
 * now), the map is re-read and the write retried on the server it names then, until freezeWaitMs has
 * passed: a client writing through a move sees success, not an error. A fenced statement changed nothing,
 * so running it again is safe. A write to a copy already dropped (its move completed or reverted while this
 * map was stale) is retried the same way when the reloaded map names another server.
 */
/** undefined_table or invalid_schema_name: the shard's schema is not on that server (any more). */
export function isMissingCopy(err: unknown): boolean {
  const code = pgCode(err)
  return code === '42P01' || code === '3F000'
}

/**
 * Runs a read (of one shard or many) with the map as it is, and once more when it meets a copy that is not
 * there any more and the reloaded map differs from the one the read started with: a move completed or
 * reverted while this process's map was stale, and the read went to the dropped copy. A read never meets a
 * fence (fences refuse writes only), and an old copy kept for a move is in sync, so this is the one retry
 * a read needs. (Another request may have reloaded the map already: compare with the version the read
 * started with, not the one before the reload.)
 */
export async function readWithMap<T>(ctx: DataContext, read: () => Promise<T>): Promise<T> {
  const version = ctx.maps.version
  try {
    return await read()
  } catch (err) {
    if (!isMissingCopy(err)) throw err
    await ctx.maps.refresh()
    if (ctx.maps.version === version) throw err
    ctx.log.debug({from: version, to: ctx.maps.version}, 'read found a dropped copy; retrying with the reloaded shard map')
    return read()
  }
}

export async function writeToShard<T>(ctx: DataContext, shard: number, write: (server: string) => Promise<T>): Promise<T> {
  const started = Date.now()
  for (let attempt = 0; ; attempt++) {
    const left = ctx.freezeWaitMs - (Date.now() - started)
    const server = await ctx.maps.writableServer(shard, Math.max(0, left))
    try {
      return await write(server)
    } catch (err) {
      if (isMissingCopy(err)) {
        // The copy this map pointed at was dropped (a move was completed or reverted): only a map naming
        // another server helps. (Another request may have reloaded the map already, so compare servers,
        // not versions.)
        await ctx.maps.refresh()
        if (ctx.maps.serverOf(shard) === server) throw err
        continue
      }
      if (!isFenceError(err)) throw err
      if (Date.now() - started >= ctx.freezeWaitMs) throw new ShardFrozenError(shard, Date.now() - started)
      ctx.log.debug({shard, server, attempt}, 'write refused by a fence; re-reading the shard map')
      const version = ctx.maps.version
      await ctx.maps.refresh()
      // Same map: the switch is under way and the freeze not visible yet; give it a moment.
      if (ctx.maps.version === version) await sleep(Math.min(5 * (attempt + 1), 50))
    }
  }
}
