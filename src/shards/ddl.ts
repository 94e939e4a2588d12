import {MAX_MS} from './ids.js'
import {LOCK_CLASS, nextIdLock} from './lock-keys.js'
import {schemaName} from './placement.js'

/** Postgres identifier quoting. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/**
 * Idempotent DDL of one logical shard's schema (safe to run again: IF NOT EXISTS / OR REPLACE).
 *
 * next_id() — the 41/13/10 id made inside Postgres, unique and strictly increasing per schema:
 * Instagram's original took `nextval() % 1024` with the current ms, so two ids in one ms repeated
 * once the sequence wrapped (and, within one ms, an id after the wrap was smaller than the one before).
 * Here the schema's sequence `id_clock` is a register holding the last (ms << 10 | seq) handed out,
 * read and written under a session advisory lock held only for the few µs of the call (not until
 * commit, so concurrent inserting transactions do not queue on each other):
 *   - a new millisecond starts at seq 0; within the same ms the seq counts up;
 *   - when 1024 ids were made in this ms, it spins until the clock reaches the next ms;
 *   - when the clock stepped back, it keeps counting from the last id (time borrowed, never repeated).
 * Sequences are not transactional, so a rolled-back insert never lets an id be handed out twice.
 */
export function shardSchemaSql(shard: number, epoch: bigint): string {
  const s = quoteIdent(schemaName(shard))
  const clockSeq = `${schemaName(shard)}.id_clock`
  const lock = `${LOCK_CLASS}, ${nextIdLock(shard)}`
  return `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE SEQUENCE IF NOT EXISTS ${s}.id_clock AS bigint MINVALUE 0 START 0;
CREATE OR REPLACE FUNCTION ${s}.next_id(OUT result bigint) LANGUAGE plpgsql AS $fn$
DECLARE
  epoch_ms CONSTANT bigint := ${epoch};
  shard_id CONSTANT bigint := ${shard};
  last_c bigint;
  now_ms bigint;
  c bigint;
  spins int := 0;
BEGIN
  PERFORM pg_advisory_lock(${lock});
  BEGIN
    SELECT last_value INTO last_c FROM ${s}.id_clock;
    now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - epoch_ms;
    -- 1024 ids in this millisecond already: wait for the next one.
    WHILE (last_c + 1) >> 10 = now_ms + 1 AND spins < 1000000 LOOP
      now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - epoch_ms;
      spins := spins + 1;
    END LOOP;
    IF now_ms < 0 THEN
      RAISE EXCEPTION 'next_id(): the clock is before the id epoch';
    END IF;
    c := greatest(now_ms << 10, last_c + 1);
    IF c >> 10 > ${MAX_MS} THEN
      RAISE EXCEPTION 'next_id(): the 41-bit time of the id format has run out for this epoch';
    END IF;
    PERFORM setval('${clockSeq}', c);
    PERFORM pg_advisory_unlock(${lock});
  EXCEPTION WHEN OTHERS OR query_canceled THEN
    PERFORM pg_advisory_unlock(${lock});
    RAISE;
  END;
  result := ((c >> 10) << 23) | (shard_id << 10) | (c & 1023);
END
$fn$;
CREATE TABLE IF NOT EXISTS ${s}.users (
  id bigint PRIMARY KEY,
  username text UNIQUE NOT NULL,
  name text NOT NULL DEFAULT '',
  bio text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
-- Tokens carry the generation they were issued in; bumping it revokes every earlier token of the user.
-- (Added by ALTER so that running this DDL again upgrades a schema made before the column existed.)
ALTER TABLE ${s}.users ADD COLUMN IF NOT EXISTS token_gen integer NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS ${s}.photos (
  id bigint PRIMARY KEY DEFAULT ${s}.next_id(),
  user_id bigint NOT NULL REFERENCES ${s}.users(id),
  caption text NOT NULL DEFAULT '',
  s3_key text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS photos_user_id_id_idx ON ${s}.photos (user_id, id DESC);
CREATE TABLE IF NOT EXISTS ${s}.follows (
  follower_id bigint NOT NULL,
  followee_id bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (follower_id, followee_id)
);
CREATE TABLE IF NOT EXISTS ${s}.likes (
  photo_id bigint NOT NULL REFERENCES ${s}.photos(id) ON DELETE CASCADE,
  user_id bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (photo_id, user_id)
);
-- Username claims, placed by a hash of the lower-cased name (shardOfUsername), not by user, so that one
-- shard decides each name for the whole service. A claim is made before its user row and removed when
-- making the user fails.
CREATE TABLE IF NOT EXISTS ${s}.usernames (
  username text PRIMARY KEY CHECK (username = lower(username)),
  user_id bigint NOT NULL,
  claimed_at timestamptz NOT NULL DEFAULT now()
);
`
}

/** The sharded tables of every schema, in creation order. */
export const SHARD_TABLES = ['users', 'photos', 'follows', 'likes', 'usernames'] as const
