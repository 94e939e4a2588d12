import {execFileSync} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {labPaths, type LabPostgresLayout} from '../layout.js'
import {findBinary} from '../packages.js'
import {asUser, postgresUser} from './postgres.js'
import type {DesiredProcess, LabComponent, LabContext} from './types.js'

/**
 * PgBouncer in front of each Postgres server (127.N.0.1:6433…), transaction pooling, so that dozens
 * of app processes share a few server connections. The app uses these (env.shards.servers[].pooledUrl);
 * operations (`shards init`, moves) go to the servers directly. Auth is trust, as on the lab's Postgres:
 * the auth file only names the user. PgBouncer refuses to run as root, so root runs it as `postgres`.
 */

const PGBOUNCER = '/usr/sbin/pgbouncer'

/** Protocol-level prepared statements in transaction pooling came with PgBouncer 1.21. */
const PREPARED_SINCE: [number, number] = [1, 21]

let versionCache: [number, number] | null | undefined

/** The installed PgBouncer's major.minor, or null when it is not installed or says no version. */
export function pgbouncerVersion(): [number, number] | null {
  if (versionCache !== undefined) return versionCache
  const bin = findBinary(PGBOUNCER)
  const out = bin ? execFileSync(bin, ['--version'], {encoding: 'utf8'}) : ''
  const m = /PgBouncer (\d+)\.(\d+)/.exec(out)
  versionCache = m ? [Number(m[1]), Number(m[2])] : null
  return versionCache
}

/** Whether the app may keep prepared statements through the installed PgBouncer. */
export function pgbouncerKeepsPrepared(version = pgbouncerVersion()): boolean {
  return version !== null && (version[0] > PREPARED_SINCE[0] || (version[0] === PREPARED_SINCE[0] && version[1] >= PREPARED_SINCE[1]))
}

function configFile(dir: string, server: string): string {
  return path.join(labPaths.pgbouncerDir(dir, server), 'pgbouncer.ini')
}

export function pgbouncerIni(dir: string, p: LabPostgresLayout, keepsPrepared: boolean): string {
  return [
    `; PgBouncer for ${p.name}; written by \`feedops lab up\` (rewritten on every up).`,
    '[databases]',
    // Any database name goes to the same-named database on the server.
    `* = host=${p.address} port=${p.port}`,
    '',
    '[pgbouncer]',
    `listen_addr = ${p.pooled.address}`,
    `listen_port = ${p.pooled.port}`,
    // No Unix socket: labs on other nets use the same port numbers.
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${path.join(labPaths.pgbouncerDir(dir, p.name), 'userlist.txt')}`,
    'admin_users = postgres',
    'stats_users = postgres',
    'pool_mode = transaction',
    'max_client_conn = 2000',
    'default_pool_size = 20',
    'reserve_pool_size = 5',
    'ignore_startup_parameters = extra_float_digits',
    ...(keepsPrepared ? ['max_prepared_statements = 200'] : []),
    'log_connections = 0',
    'log_disconnections = 0',
    '',
  ].join('\n')
}

function enabled(ctx: LabContext): boolean {
  return ctx.pgbouncer && ctx.layout.postgres.length > 0
}

export const pgbouncerComponent: LabComponent = {
  id: 'pgbouncer',
  title: 'PgBouncers',

  packages: (ctx) => (enabled(ctx) ? [{package: 'pgbouncer', binary: PGBOUNCER}] : []),

  desired: (ctx) => {
    if (!enabled(ctx)) return []
    const user = postgresUser(ctx)
    return ctx.layout.postgres.map((p): DesiredProcess => {
      const ini = configFile(ctx.dir, p.name)
      return {
        component: 'pgbouncer',
        name: p.name,
        address: p.pooled.address,
        port: p.pooled.port,
        argv: [findBinary(PGBOUNCER) ?? PGBOUNCER, ini],
        match: [ini],
        logFile: path.join(labPaths.pgbouncerDir(ctx.dir, p.name), 'pgbouncer.log'),
        ...asUser(user),
      }
    })
  },

  async prepare(ctx) {
    if (!enabled(ctx)) return
    const keepsPrepared = pgbouncerKeepsPrepared()
    for (const p of ctx.layout.postgres) {
      const dir = labPaths.pgbouncerDir(ctx.dir, p.name)
      mkdirSync(dir, {recursive: true, mode: 0o755})
      writeFileSync(path.join(dir, 'userlist.txt'), '"postgres" ""\n')
      writeFileSync(configFile(ctx.dir, p.name), pgbouncerIni(ctx.dir, p, keepsPrepared))
    }
  },
}
