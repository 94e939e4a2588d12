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
/** PgBouncer in front of Postgres server i listens on PGBOUNCER_FIRST_PORT + i - 1. */
export const PGBOUNCER_FIRST_PORT = 6433
/** The lab ELB's front (HAProxy): the Classic load balancer on 8000, the ELBv2 target group's on 8001. */
export const ELB_PORT = 8000
export const TARGET_GROUP_PORT = 8001
/** The load balancer and the target group `lab up` makes over the NGINX nodes. */
export const LAB_LB_NAME = 'feed-lab'
export const LAB_TARGET_GROUP_NAME = 'feed-lab-tg'
/** The feed app on app hosts, nginx on NGINX nodes. */
export const HTTP_PORT = 8080

export const MAX_HOSTS = 254
export const MAX_POSTGRES = 16
export const MAX_NGINX = 254

export interface LabHostLayout {
  /** app1, app2… or nginx1, nginx2… */
  name: string
  /** app: 127.N.1.K; nginx: 127.N.2.K */
  address: string
  /** sshd's */
  port: number
  /** K */
  index: number
  instanceId: string
  role: 'app' | 'nginx'
  /** The host's HTTP server: the app (app hosts) or nginx (NGINX nodes). */
  httpPort: number
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
  /** PgBouncer in front of this server (transaction pooling), same database. */
  pooled: LabEndpoint & {url: string}
}

export interface LabEndpoint {
  address: string
  port: number
}

export interface LabLayout {
  net: number
  /** App hosts. */
  hosts: LabHostLayout[]
  /** NGINX nodes (hosts too: sshd + nginx). */
  nginx: LabHostLayout[]
  postgres: LabPostgresLayout[]
  redis: LabEndpoint & {url: string}
  memcached: LabEndpoint & {server: string}
  /** The EC2 and ELB query API endpoint. */
  cloud: LabEndpoint & {endpoint: string}
  /** The ELB's data plane (HAProxy): where the Classic load balancer and the target group take traffic. */
  elb: LabEndpoint & {url: string; targetGroup: LabEndpoint & {url: string}}
}

export function labLayout(net: number, hosts: number, postgres: number, nginx = 0): LabLayout {
  const base = `127.${net}.0.1`
  const host = (role: LabHostLayout['role'], k: number): LabHostLayout => ({
    name: `${role}${k}`,
    address: `127.${net}.${role === 'app' ? 1 : 2}.${k}`,
    port: SSH_PORT,
    index: k,
    instanceId: instanceIdFor(net, role === 'app' ? k : NGINX_ID_OFFSET + k),
    role,
    httpPort: HTTP_PORT,
  })
  return {
    net,
    hosts: range(hosts).map((k) => host('app', k)),
    nginx: range(nginx).map((k) => host('nginx', k)),
    postgres: range(postgres).map((i) => {
      const port = POSTGRES_FIRST_PORT + i - 1
      const pooledPort = PGBOUNCER_FIRST_PORT + i - 1
      return {
        name: `pg${i}`,
        address: base,
        port,
        url: `postgres://postgres@${base}:${port}/feedops`,
        ...(i === 1 ? {catalogUrl: `postgres://postgres@${base}:${port}/feedops_catalog`} : {}),
        pooled: {address: base, port: pooledPort, url: `postgres://postgres@${base}:${pooledPort}/feedops`},
      }
    }),
    redis: {address: base, port: REDIS_PORT, url: `redis://${base}:${REDIS_PORT}`},
    memcached: {address: base, port: MEMCACHED_PORT, server: `${base}:${MEMCACHED_PORT}`},
    cloud: {address: base, port: CLOUD_PORT, endpoint: `http://${base}:${CLOUD_PORT}`},
    elb: {
      address: base,
      port: ELB_PORT,
      url: `http://${base}:${ELB_PORT}`,
      targetGroup: {address: base, port: TARGET_GROUP_PORT, url: `http://${base}:${TARGET_GROUP_PORT}`},
    },
  }
}

/** Added to K in an NGINX node's instance id (its addresses are 127.N.2.K), so it never meets an app host's. */
const NGINX_ID_OFFSET = 2_000_000

/** Every host with an sshd: app hosts, then NGINX nodes. */
export function sshHosts(layout: LabLayout): LabHostLayout[] {
  return [...layout.hosts, ...layout.nginx]
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
  /** An NGINX node's nginx folder (config, upstreams, pid, logs), on the node's own disk. */
  nginxDir: (dir: string, node: string) => path.join(dir, 'hosts', node, 'root', 'nginx'),
  /** HAProxy's config, runtime socket, server-state file and pid file (the lab ELB's data plane). */
  haproxyDir: (dir: string) => path.join(dir, 'haproxy'),
  /** One JSON line per request the cloud endpoint answered. */
  cloudRequests: (dir: string) => path.join(dir, 'cloud-requests.jsonl'),
  /** PgBouncer's config and auth file for one Postgres server. */
  pgbouncerDir: (dir: string, server: string) => path.join(dir, 'pgbouncer', server),
}

function range(n: number): number[] {
  return Array.from({length: n}, (_, i) => i + 1)
}
