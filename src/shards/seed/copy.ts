import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import type pg from 'pg'
import {from as copyFrom} from 'pg-copy-streams'

import type {PhotoRows} from './plan.js'

const UNIQUE_VIOLATION = '23505'

/** Rows from..to-1 by COPY; if an id already exists, again with ON CONFLICT DO NOTHING. Returns the row indexes inserted. */
export async function insertPhotos(client: pg.PoolClient, s: string, rows: PhotoRows, from: number, to: number): Promise<number[]> {
  const all = Array.from({length: to - from}, (_, i) => from + i)
  try {
    await copyRows(client, `COPY ${s}.photos (id, user_id, caption, s3_key, created_at) FROM STDIN`, to - from, function* () {
      for (let k = from; k < to; k++) yield photoLine(rows, k)
    })
    return all
  } catch (err) {
    if ((err as {code?: string}).code !== UNIQUE_VIOLATION) throw err
  }
  const inserted = new Set<string>()
  for (let i = from; i < to; i += 10_000) {
    const ks = all.slice(i - from, i - from + 10_000)
    const r = await client.query<{id: string}>(
      `INSERT INTO ${s}.photos (id, user_id, caption, s3_key, created_at)
       SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[])
       ON CONFLICT (id) DO NOTHING RETURNING id::text`,
      [
        ks.map((k) => rows.ids[k]!.toString()),
        ks.map((k) => String(rowsUser(rows, k))),
        ks.map((k) => caption(rows, k)),
        ks.map((k) => s3Key(rows, k)),
        ks.map((k) => new Date(rows.times[k]!).toISOString()),
      ],
    )
    for (const row of r.rows) inserted.add(row.id)
  }
  return all.filter((k) => inserted.has(rows.ids[k]!.toString()))
}

function rowsUser(rows: PhotoRows, k: number): number {
  return rows.userIds[rows.owners[k]!]!
}
function caption(rows: PhotoRows, k: number): string {
  return `photo ${k + 1} of shard ${Number((rows.ids[k]! >> 10n) & 8191n)}`
}
function s3Key(rows: PhotoRows, k: number): string {
  return `photos/${rowsUser(rows, k)}/${rows.ids[k]}.jpg`
}
function photoLine(rows: PhotoRows, k: number): string {
  return `${rows.ids[k]}\t${rowsUser(rows, k)}\t${caption(rows, k)}\t${s3Key(rows, k)}\t${new Date(rows.times[k]!).toISOString()}\n`
}

/** Streams generated lines into one COPY … FROM STDIN, in ~256 kB chunks; returns the rows copied. */
export async function copyRows(client: pg.PoolClient, sql: string, expected: number, lines: () => Iterable<string>): Promise<number> {
  if (expected === 0) return 0
  const stream = client.query(copyFrom(sql))
  function* chunks(): Generator<string> {
    let buf = ''
    for (const line of lines()) {
      buf += line
      if (buf.length > 262_144) {
        yield buf
        buf = ''
      }
    }
    if (buf) yield buf
  }
  await pipeline(Readable.from(chunks(), {objectMode: false}), stream)
  return Number(stream.rowCount ?? expected)
}

/**
 * Runs fn on a connection of its own that commits synchronously. The lab's servers run with
 * synchronous_commit off, and Postgres keeps one "flushed yet?" mark per group of 32 transaction ids, which
 * any later asynchronous commit in the group moves on. Until the WAL is flushed past it, no row of the group
 * gets its committed hint bit, and VACUUM marks no page holding such a row all-visible: the seed's reads
 * would then plan without index-only scans. Synchronous commits leave the mark alone.
 */
export async function withSyncCommit<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let failed: Error | undefined
  try {
    await client.query('SET synchronous_commit = on')
    const out = await fn(client)
    await client.query('RESET synchronous_commit')
    return out
  } catch (err) {
    failed = err instanceof Error ? err : new Error(String(err))
    throw err
  } finally {
    client.release(failed) // after a failure the session's state is unknown: closed, not pooled
  }
}

