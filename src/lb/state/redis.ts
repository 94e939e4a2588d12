import type {Redis} from 'ioredis'

import {emptyState, newLockInfo, parseState, sleep, type LbState, type LbStateStore, type LockInfo} from './store.js'

/** Deletes the lock only if it still holds this token (a lock taken over after going stale is not ours to drop). */
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

/**
 * The state as one JSON string under `<prefix>:state`, and the pass lock as `<prefix>:lock`, set with
 * SET NX PX (staleS): the lock expires by itself if its holder dies, and only the holder's exact value
 * (which carries its random token) deletes it. Several operator machines pointing at the same Redis
 * share the counts, the drains and the lock.
 */
export function redisStateStore(redis: Redis, prefix: string, staleS: number, where: string): LbStateStore {
  const lockKey = `${prefix}:lock`
  const stateKey = `${prefix}:state`
  return {
    where: `Redis ${where} key ${prefix}`,
    async acquire(what, waitMs = 0) {
      const info = newLockInfo(what)
      const value = JSON.stringify(info)
      const deadline = Date.now() + waitMs
      for (;;) {
        const set = await redis.set(lockKey, value, 'PX', staleS * 1000, 'NX')
        if (set === 'OK') {
          return {ok: true, lock: {info, release: async () => void (await redis.eval(RELEASE, 1, lockKey, value))}}
        }
        if (Date.now() >= deadline) {
          const held = await redis.get(lockKey)
          let holder: LockInfo | undefined
          try {
            holder = held ? (JSON.parse(held) as LockInfo) : undefined
          } catch {
            holder = undefined
          }
          // Released between our SET and GET: try once more rather than report a holder that is gone.
          if (held === null) continue
          return {ok: false, holder}
        }
        await sleep(Math.min(200, Math.max(1, deadline - Date.now())))
      }
    },
    async read() {
      const text = await redis.get(stateKey)
      return text === null ? emptyState() : parseState(text, `Redis key ${stateKey}`)
    },
    async write(state: LbState) {
      await redis.set(stateKey, JSON.stringify(state))
    },
    async close() {
      redis.disconnect()
    },
  }
}
