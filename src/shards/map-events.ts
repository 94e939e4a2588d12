import type {Redis} from 'ioredis'

/**
 * Shard map change notices. Whoever changes the map publishes the new version after the CAS commits;
 * readers subscribe for speed and also poll readMapVersion (≤ 1 s) because pub/sub can drop messages.
 */
export const MAP_CHANNEL = 'feedops:shardmap'

export async function publishMapVersion(redis: Redis, version: number): Promise<void> {
  await redis.publish(MAP_CHANNEL, String(version))
}

/**
 * Calls onVersion with each version announced. `subscriber` must be a connection of its own (a
 * subscribed ioredis connection cannot run other commands). Returns a function that unsubscribes.
 */
export async function subscribeMapVersion(subscriber: Redis, onVersion: (version: number) => void): Promise<() => Promise<void>> {
  const listener = (channel: string, message: string) => {
    const v = Number(message)
    if (channel === MAP_CHANNEL && Number.isSafeInteger(v)) onVersion(v)
  }
  subscriber.on('message', listener)
  await subscriber.subscribe(MAP_CHANNEL)
  return async () => {
    subscriber.off('message', listener)
    await subscriber.unsubscribe(MAP_CHANNEL)
  }
}
