import {randomBytes} from 'node:crypto'
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {userInfo} from 'node:os'
import {stringify} from 'yaml'

import type {ConfigFile, EnvironmentConfig, ShardsSettings} from '../config/schema.js'
import {configFileSchema, deploySchema} from '../config/schema.js'
import {pgbouncerKeepsPrepared} from './components/pgbouncer.js'
import {labPaths, sshHosts, type LabLayout} from './layout.js'
import {labLbSection} from './lb-settings.js'

/** deploy.path on lab hosts, under each host's root folder (its $HOME). */
export const LAB_DEPLOY_DIR = 'feed'

export interface LabConfigInput {
  dir: string
  layout: LabLayout
  redis: boolean
  memcached: boolean
  cloud: boolean
  /** PgBouncer runs in front of each Postgres server: the app gets its pooledUrl. */
  pgbouncer?: boolean
}

/** The lab's shards section (none without Postgres): direct URLs, plus PgBouncer's as pooledUrl. */
export function labShards(layout: LabLayout, pgbouncer = false): ShardsSettings | undefined {
  if (layout.postgres.length === 0) return undefined
  return {
    catalog: layout.postgres[0]!.catalogUrl!,
    servers: layout.postgres.map((p) => ({name: p.name, url: p.url, ...(pgbouncer ? {pooledUrl: p.pooled.url} : {}), weight: 1})),
    logical: 64,
    epoch: '2011-01-01T00:00:00Z',
  }
}

/**
 * The lab's feedops.yml: environment `lab` pointing at every lab part. Inventory comes from the
 * lab's EC2 endpoint (the code path used against AWS); a lab without the endpoint lists its hosts
 * statically instead (app hosts with role app, NGINX nodes with role nginx).
 */
export function labConfig(input: LabConfigInput): ConfigFile {
  const {layout} = input
  const shards = labShards(layout, input.pgbouncer)
  const pooled = shards?.servers.some((s) => s.pooledUrl) ?? false
  const lab: EnvironmentConfig = {
    ssh: {
      user: userInfo().username,
      port: 2222,
      identityFile: 'id_ed25519',
      agent: false,
      knownHosts: 'known_hosts',
      sshConfig: false,
      connectTimeout: 10,
      commandTimeout: 0,
      concurrency: 64,
    },
    inventory:
      input.cloud || sshHosts(layout).length === 0
        ? {source: 'ec2', filters: {Env: 'lab'}, roleTag: 'Role', nameTag: 'Name', address: 'private'}
        : {
            source: 'static',
            hosts: sshHosts(layout).map((h) => ({name: h.name, address: h.address, roles: [h.role], tags: {Env: 'lab'}})),
          },
    aws: {
      region: 'us-east-1',
      endpoint: layout.cloud.endpoint,
      credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'},
    },
    ...(shards ? {shards} : {}),
    ...(input.redis ? {redis: {url: layout.redis.url}} : {}),
    ...(input.memcached ? {memcached: {servers: [layout.memcached.server]}} : {}),
    // The feed app's section (src/config/app.ts holds its schema): lab photos are never served, so any CDN base does.
    // PgBouncer before 1.21 cannot keep prepared statements in transaction pooling (Debian 12 ships 1.18).
    app: {
      cdnBase: 'https://cdn.lab.invalid',
      secret: labAppSecret(input.dir),
      ...(pooled && !pgbouncerKeepsPrepared() ? {preparedStatements: false} : {}),
    },
    // Lab hosts have no systemd: the restart is the process manager carried in each release (the default).
    // Their apps share this machine's cores, so a batch of 24 starting at once needs the default 30 s gate.
    deploy: deploySchema.parse({path: `~/${LAB_DEPLOY_DIR}`, lockStaleSeconds: 30, minFreeMb: 256}),
    // The lab's ELB (HAProxy behind the endpoint's Classic ELB API); labLbSection('elbv2') is its target group.
    ...(input.cloud && layout.nginx.length > 0 ? {lb: labLbSection('classic')} : {}),
    lab: {dir: input.dir},
  }
  return {defaultEnvironment: 'lab', environments: {lab}}
}

/** A random secret per lab, kept in the lab dir so tokens stay valid across ups. */
function labAppSecret(dir: string): string {
  const file = labPaths.appSecret(dir)
  if (!existsSync(file)) writeFileSync(file, randomBytes(24).toString('hex') + '\n', {mode: 0o600})
  return readFileSync(file, 'utf8').trim()
}

/** Writes <dir>/feedops.yml (validated against the config schema first) and returns its path. */
export function writeLabConfig(input: LabConfigInput): string {
  const config = configFileSchema.parse(labConfig(input))
  const file = labPaths.config(input.dir)
  const header = '# Written by `feedops lab up`; rewritten on every up. Copy it elsewhere to change it.\n'
  writeFileSync(file, header + stringify(compact(config)))
  return file
}

/** Drops the keys equal to schema defaults that only add noise (roleTag, weight…). */
function compact(config: ConfigFile): unknown {
  const env = config.environments.lab!
  const {ssh, inventory} = env
  const {agent: _agent, commandTimeout: _commandTimeout, ...sshShown} = ssh
  const inventoryShown =
    inventory.source === 'ec2'
      ? {source: 'ec2', filters: inventory.filters}
      : {source: 'static', hosts: inventory.hosts.map((h) => ({name: h.name, address: h.address, roles: h.roles, tags: h.tags}))}
  const shards = env.shards
    ? {
        catalog: env.shards.catalog,
        servers: env.shards.servers.map((s) => ({name: s.name, url: s.url, ...(s.pooledUrl ? {pooledUrl: s.pooledUrl} : {})})),
        logical: env.shards.logical,
      }
    : undefined
  return {
    defaultEnvironment: config.defaultEnvironment,
    environments: {lab: {...env, ssh: sshShown, inventory: inventoryShown, ...(shards ? {shards} : {})}},
  }
}
