import path from 'node:path'

/**
 * Where every part of a lab lives. A lab has a "net" octet N: everything binds to 127.N.x.y, so
 * several labs (the user's on N=0, tests on 20+) run side by side. The layout is pure data; the
 * lab dir only decides where files go (see the path helpers below).
 */

export const SSH_PORT = 2222
export const CLOUD_PORT = 4566
export const POSTGRES_FIRST_PORT = 5433
export const REDIS_PORT = 6380
export const MEMCACHED_PORT = 11212

export const MAX_HOSTS = 254
export const MAX_POSTGRES = 16

export interface LabHostLayout {
  /** app1, app2… */
  name: string
  /** 127.N.1.K */
  address: string
  port: number
  /** K */
  index: number
  instanceId: string
}

export interface LabPostgresLayout {
  /** pg1, pg2… */
  name: string
  address: string
  port: number
  /** postgres://postgres@127.N.0.1:PORT/feedops */
  url: string
  /** The database holding the shard map; only on pg1. */
  catalogUrl?: string
}

export interface LabEndpoint {
  address: string
  port: number
}

export interface LabLayout {
  net: number
  hosts: LabHostLayout[]
  postgres: LabPostgresLayout[]
  redis: LabEndpoint & {url: string}
  memcached: LabEndpoint & {server: string}
  /** The EC2 (and later ELB) query API endpoint. */
  cloud: LabEndpoint & {endpoint: string}
}

export function labLayout(net: number, hosts: number, postgres: number): LabLayout {
  const base = `127.${net}.0.1`
  return {
    net,
    hosts: range(hosts).map((k) => ({
      name: `app${k}`,
      address: `127.${net}.1.${k}`,
      port: SSH_PORT,
      index: k,
      instanceId: instanceIdFor(net, k),
    })),
    postgres: range(postgres).map((i) => {
      const port = POSTGRES_FIRST_PORT + i - 1
      return {
        name: `pg${i}`,
        address: base,
        port,
        url: `postgres://postgres@${base}:${port}/feedops`,
        ...(i === 1 ? {catalogUrl: `postgres://postgres@${base}:${port}/feedops_catalog`} : {}),
      }
    }),
    redis: {address: base, port: REDIS_PORT, url: `redis://${base}:${REDIS_PORT}`},
    memcached: {address: base, port: MEMCACHED_PORT, server: `${base}:${MEMCACHED_PORT}`},
    cloud: {address: base, port: CLOUD_PORT, endpoint: `http://${base}:${CLOUD_PORT}`},
  }
}

/** i-0lab + 11 digits (3 for the net, 8 for the host), so ids never collide between labs. */
export function instanceIdFor(net: number, k: number): string {
  return `i-0lab${String(net).padStart(3, '0')}${String(k).padStart(8, '0')}`
}

/** Files and folders inside the lab dir. */
export const labPaths = {
  config: (dir: string) => path.join(dir, 'feedops.yml'),
  knownHosts: (dir: string) => path.join(dir, 'known_hosts'),
  clientKey: (dir: string) => path.join(dir, 'id_ed25519'),
  /** The feed app's token secret for this lab, made once and kept across ups. */
  appSecret: (dir: string) => path.join(dir, 'app-secret'),
  authorizedKeys: (dir: string) => path.join(dir, 'authorized_keys'),
  cloudJson: (dir: string) => path.join(dir, 'cloud.json'),
  state: (dir: string) => path.join(dir, 'state.json'),
  logs: (dir: string) => path.join(dir, 'logs'),
  log: (dir: string, name: string) => path.join(dir, 'logs', `${name}.log`),
  hostDir: (dir: string, host: string) => path.join(dir, 'hosts', host),
  /** The folder that stands for the host's disk. */
  hostRoot: (dir: string, host: string) => path.join(dir, 'hosts', host, 'root'),
  postgresData: (dir: string, name: string) => path.join(dir, 'postgres', name),
  redisDir: (dir: string) => path.join(dir, 'redis'),
}

function range(n: number): number[] {
  return Array.from({length: n}, (_, i) => i + 1)
}
