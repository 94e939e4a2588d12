/**
 * The rebalance tables of the catalog (see store.ts), as one of the catalog's numbered migrations
 * (CATALOG_MIGRATIONS in src/shards/catalog.ts).
 */
export const REBALANCE_STATUSES = ['running', 'stopped', 'interrupted', 'failed', 'done', 'abandoned'] as const
export type RebalanceStatus = (typeof REBALANCE_STATUSES)[number]
/** An open rebalance is continued by the next `rebalance`; at most one is open. */
export const OPEN_STATUSES: readonly RebalanceStatus[] = ['running', 'stopped', 'interrupted', 'failed']

export const MOVE_OUTCOMES = ['pending', 'running', 'moved', 'completed', 'failed', 'interrupted'] as const
export type MoveOutcome = (typeof MOVE_OUTCOMES)[number]

const list = (xs: readonly string[]) => xs.map((x) => `'${x}'`).join(', ')

export const REBALANCE_DDL = `
CREATE TABLE IF NOT EXISTS shard_rebalances (
  id bigserial PRIMARY KEY,
  plan jsonb NOT NULL,
  options jsonb NOT NULL DEFAULT '{}',
  status text NOT NULL CHECK (status IN (${list(REBALANCE_STATUSES)})),
  stop_requested boolean NOT NULL DEFAULT false,
  owner text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS shard_rebalances_one_open ON shard_rebalances ((true)) WHERE status IN (${list(OPEN_STATUSES)});
CREATE TABLE IF NOT EXISTS shard_rebalance_moves (
  rebalance_id bigint NOT NULL REFERENCES shard_rebalances (id),
  ord int NOT NULL,
  shard int NOT NULL,
  source text NOT NULL,
  target text NOT NULL,
  rows bigint NOT NULL DEFAULT 0,
  bytes bigint NOT NULL DEFAULT 0,
  job_id bigint,
  outcome text NOT NULL DEFAULT 'pending' CHECK (outcome IN (${list(MOVE_OUTCOMES)})),
  error text,
  started_at timestamptz,
  finished_at timestamptz,
  PRIMARY KEY (rebalance_id, shard)
);
`
