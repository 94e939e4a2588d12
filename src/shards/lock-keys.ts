/**
 * Every Postgres advisory lock feedops takes, as the two-key form `pg_advisory_lock(class, key)`. All of them
 * share one class, so a lock of another program on the same server cannot collide with ours; the key says
 * which lock it is. Logical shards use keys 0..8191 (next_id() of that shard); named locks are negative.
 */

/** The class of every feedops advisory lock: "feed" in ASCII. */
export const LOCK_CLASS = 0x66656564

/** Held (for the transaction) while the catalog's tables are created, so concurrent creators serialize. */
export const CATALOG_DDL_LOCK = -1

/** Held (for the session) by the one `shards init` running against a catalog. */
export const SHARDS_INIT_LOCK = -2

/** Held for a few µs inside a shard's next_id(): its key is the logical shard itself. */
export const nextIdLock = (shard: number): number => shard
