/**
 * The fence of a logical shard's old copy (see src/shards/move/server-objects.ts): a write reaching a
 * fenced schema fails with this SQLSTATE, so the app knows to reload its shard map and retry elsewhere.
 */
export const FENCE_SQLSTATE = 'FO001'

export function isFenceError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as {code?: unknown}).code === FENCE_SQLSTATE
}
