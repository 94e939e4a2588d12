import {quoteIdent} from '../ddl.js'

/**
 * Names of what a move makes on the servers. Publications, subscriptions and slots carry the job id,
 * so a leftover can always be traced to its job (`shards doctor`). Everything the move keeps per server
 * lives in the schema `feedops_move`, outside every shard schema, so `FOR TABLES IN SCHEMA` never
 * publishes it (except the marker rows a publication names explicitly).
 */
export const MOVE_SCHEMA = 'feedops_move'

export type Direction = 'fwd' | 'rev'

/** `feedops_move_12_fwd`: the publication, slot and subscription of job 12's forward stream. */
export function streamName(jobId: number, dir: Direction): string {
  return `feedops_move_${jobId}_${dir}`
}

/** The job id and direction of a stream name, or null (tablesync slots: see syncSlotPattern). */
export function parseStreamName(name: string): {jobId: number; dir: Direction} | null {
  const m = /^feedops_move_(\d+)_(fwd|rev)$/.exec(name)
  return m ? {jobId: Number(m[1]), dir: m[2] as Direction} : null
}

/** Postgres' own slots for a subscription's initial table copies: pg_<sub oid>_sync_<rel oid>_<system id>. */
export const SYNC_SLOT = /^pg_\d+_sync_\d+_\d+$/

/** A SQL string literal. */
export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}

export const q = quoteIdent
