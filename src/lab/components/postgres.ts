import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'
import {setTimeout as sleep} from 'node:timers/promises'
import type pg from 'pg'

import {UserError} from '../../errors.js'
import {labPaths} from '../layout.js'
import {findBinary} from '../packages.js'
import {isRunning, stopProcess, waitUntilGone, type StopOutcome} from '../process.js'
import type {DesiredProcess, LabComponent, LabContext} from './types.js'

/**
 * Physical PostgreSQL servers pg1…pgP on 127.N.0.1, ports 5433…, TCP only, trust auth,
 * wal_level=logical. initdb runs once into a cached template (keyed by the server version and
 * the settings below); each server's data dir is a copy of it. Root runs the servers as `postgres`.
 */

const INITDB = '/usr/lib/postgresql/*/bin/initdb'

/** Appended to the template's postgresql.conf; listen address and port come on the command line. */
const LAB_SETTINGS = `
# feedops lab: logical decoding for shard moves, TCP only. A commit is acknowledged only once its WAL
# is written (synchronous_commit = on, as in production), so a kill -9 of the server loses no
# acknowledged write; fsync stays off (the lab's faults kill processes, not the machine).
fsync = off
synchronous_commit = on
full_page_writes = off
wal_level = logical
max_wal_senders = 32
max_replication_slots = 32
max_logical_replication_workers = 16
max_worker_processes = 32
max_connections = 200
shared_buffers = 32MB
unix_socket_directories = ''
log_min_messages = warning
log_line_prefix = '%m [%p] '
`

const HBA = `# feedops lab: trust on loopback only.
local all all trust
host all all 127.0.0.0/8 trust
host replication all 127.0.0.0/8 trust
`

interface PgUser {
  uid: number
  gid: number
}

export function pgBinDir(): string {
  const initdb = findBinary(INITDB)
  if (!initdb) throw new UserError('PostgreSQL (initdb) is not installed.', {fix: 'Run `apt-get install -y postgresql`.'})
  return path.dirname(initdb)
}

/** The system `postgres` user, when root must drop to it. */
export function postgresUser(ctx: {isRoot: boolean}): PgUser | undefined {
  if (!ctx.isRoot) return undefined
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'))
  if (!line) {
    throw new UserError('There is no `postgres` system user to run the lab databases as.', {
      fix: 'Reinstall the postgresql package (it creates the user), or run `feedops lab up` as a normal user.',
    })
  }
  const [, , uid, gid] = line.split(':')
  return {uid: Number(uid), gid: Number(gid)}
}

export function asUser(user: PgUser | undefined): {uid?: number; gid?: number} {
  return user ? {uid: user.uid, gid: user.gid} : {}
}

const run = promisify(execFile)

export const postgresComponent: LabComponent = {
  id: 'postgres',
  title: 'Postgres servers',

  packages: (ctx) =>
    ctx.layout.postgres.length > 0
      ? [
          {package: 'postgresql', binary: INITDB},
          {package: 'postgresql', binary: INITDB.replace('initdb', 'postgres')},
          {package: 'postgresql', binary: INITDB.replace('initdb', 'pg_ctl')},
        ]
      : [],

  desired: (ctx) => {
    if (ctx.layout.postgres.length === 0) return []
    const bin = pgBinDir()
    const user = postgresUser(ctx)
    return ctx.layout.postgres.map((p): DesiredProcess => {
      const data = labPaths.postgresData(ctx.dir, p.name)
      return {
        component: 'postgres',
        name: p.name,
        address: p.address,
        port: p.port,
        argv: [path.join(bin, 'postgres'), '-D', data, '-p', String(p.port), '-c', `listen_addresses=${p.address}`],
        match: [`-D ${data} -p ${p.port} `],
        logFile: labPaths.log(ctx.dir, p.name),
        ...asUser(user),
      }
    })
  },

  check(ctx) {
    const user = ctx.layout.postgres.length > 0 ? postgresUser(ctx) : undefined
    // The lab dir itself is made traversable by `lab up`; its parents are the user's to change.
    if (user) checkReachable(nearestExisting(path.dirname(ctx.dir)), user, ctx.dir)
  },

  async prepare(ctx: LabContext, toStart: DesiredProcess[]) {
    const fresh = toStart.filter((p) => !existsSync(path.join(labPaths.postgresData(ctx.dir, p.name), 'PG_VERSION')))
    if (toStart.length === 0) return
    const user = postgresUser(ctx)
    mkdirSync(path.join(ctx.dir, 'postgres'), {recursive: true, mode: 0o755})
    if (fresh.length > 0) {
      const template = await ensureTemplate(ctx, user)
      await Promise.all(
        fresh.map(async (p) => {
          const data = labPaths.postgresData(ctx.dir, p.name)
          rmSync(data, {recursive: true, force: true}) // only a dir without PG_VERSION: never initialised
          await run('cp', ['-a', template, data])
        }),
      )
    }
    // A server killed hard leaves postmaster.pid behind; Postgres checks it and starts anyway.
    for (const p of toStart) mkdirSync(path.dirname(p.logFile), {recursive: true})
  },

  /** Databases: `feedops` on every server, `feedops_catalog` on pg1. */
  async ready(ctx: LabContext) {
    await Promise.all(
      ctx.layout.postgres.map(async (p) => {
        const client = await connectWhenStarted({host: p.address, port: p.port, user: 'postgres', database: 'postgres'})
        try {
          const wanted = p.catalogUrl ? ['feedops', 'feedops_catalog'] : ['feedops']
          const {rows} = await client.query<{datname: string}>('SELECT datname FROM pg_database WHERE datname = ANY($1)', [wanted])
          for (const db of wanted.filter((d) => !rows.some((r) => r.datname === d))) {
            await client.query(`CREATE DATABASE ${db}`)
          }
        } finally {
          await client.end()
        }
      }),
    )
  },

  /** `pg_ctl stop -m fast` (as the server's user), then TERM/KILL by pid if it is still there. */
  async stop(dir, record): Promise<StopOutcome> {
    const data = labPaths.postgresData(dir, record.name)
    if (!isRunning(record)) return 'not-running'
    const owner = statSync(data, {throwIfNoEntry: false})
    const user = process.getuid?.() === 0 && owner ? {uid: owner.uid, gid: owner.gid} : undefined
    try {
      await run(path.join(pgBinDir(), 'pg_ctl'), ['stop', '-D', data, '-m', 'fast', '-w', '-t', '20'], asUser(user))
    } catch {
      // fall through to signals
    }
    if (await waitUntilGone(record, 2000)) return 'stopped'
    return stopProcess(record, {signal: 'SIGINT'})
  },
}

/**
 * initdb once per (version, settings) into a cache dir everyone can traverse, built aside and
 * renamed into place so parallel labs never see half a template.
 */
async function ensureTemplate(ctx: LabContext, user: PgUser | undefined): Promise<string> {
  const bin = pgBinDir()
  const version = path.basename(path.dirname(bin))
  const key = createHash('sha256').update(`${bin}\n${LAB_SETTINGS}\n${HBA}`).digest('hex').slice(0, 12)
  const cache = process.env.FEEDOPS_CACHE_DIR ?? path.join(tmpdir(), 'feedops-cache')
  const template = path.join(cache, `postgres-${version}-${key}`)
  if (existsSync(path.join(template, 'PG_VERSION'))) return template
  ctx.progress('Postgres: initdb into the template (once)')
  mkdirSync(cache, {recursive: true, mode: 0o755})
  const work = mkdtempSync(path.join(cache, 'initdb-'))
  try {
    if (user) {
      chownSync(work, user.uid, user.gid)
      checkReachable(work, user, work)
    }
    const data = path.join(work, 'data')
    await run(
      path.join(bin, 'initdb'),
      ['-D', data, '--no-sync', '--auth=trust', '--username=postgres', '--encoding=UTF8', '--locale=C'],
      asUser(user),
    ).catch((err: Error & {stderr?: string}) => {
      throw new Error(`initdb failed: ${(err.stderr ?? err.message).trim()}`)
    })
    writeFileSync(path.join(data, 'postgresql.conf'), readFileSync(path.join(data, 'postgresql.conf'), 'utf8') + LAB_SETTINGS)
    writeFileSync(path.join(data, 'pg_hba.conf'), HBA)
    try {
      renameSync(data, template)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err // else another lab won the race
    }
  } finally {
    rmSync(work, {recursive: true, force: true})
  }
  return template
}

/** The `postgres` user must be able to walk down to `target` (checked from `dir` up). */
function checkReachable(dir: string, user: PgUser, target: string): void {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const st = statSync(d)
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001
    if ((st.mode & bit) === 0) {
      throw new UserError(`The postgres user cannot enter ${d}, so the lab's Postgres servers cannot reach ${target}.`, {
        fix: `Run \`chmod o+x ${d}\`, or use a lab dir elsewhere (--dir /var/tmp/feedops-lab).`,
      })
    }
    if (d === path.dirname(d)) return
  }
}

function nearestExisting(dir: string): string {
  let d = path.resolve(dir)
  while (!existsSync(d) && d !== path.dirname(d)) d = path.dirname(d)
  return d
}

/** Postgres listens before it accepts sessions ("the database system is starting up", 57P03): retry for a while. */
async function connectWhenStarted(config: pg.ClientConfig, timeoutMs = 30_000): Promise<pg.Client> {
  const {default: pgLib} = await import('pg') // loaded only when a server starts
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const client = new pgLib.Client(config)
    client.on('error', () => undefined)
    try {
      await client.connect()
      return client
    } catch (err) {
      await client.end().catch(() => undefined)
      const code = (err as {code?: string}).code
      if ((code !== '57P03' && code !== 'ECONNREFUSED') || Date.now() > deadline) throw err
      await sleep(100)
    }
  }
}
