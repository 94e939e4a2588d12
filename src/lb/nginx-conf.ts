import path from 'node:path'

/**
 * An NGINX node's configuration, rendered in one place for the lab's first start and for the
 * `nginx-upstreams` playbook. A node keeps everything in one folder (the lab: `<host root>/nginx`;
 * the playbook: `$HOME/nginx` on the node): nginx.conf, upstreams.conf (the app hosts, re-rendered from
 * the inventory by the playbook), nginx.pid, logs/ and tmp/.
 *
 * Retries. `proxy_next_upstream error timeout http_502 http_503` sends a failed request to the next app
 * host. For GET/HEAD that is always safe. For POST/PATCH (likes, new photos) nginx retries only while
 * no byte of the request has reached an app host: a refused or timed-out connect (app stopped,
 * restarting, host down) moves to the next host, but an error, a timeout or a 502/503 after the request
 * was sent does not, because the app may already have applied the write and a second try would apply
 * it twice. That is why `non_idempotent` is deliberately not set.
 *
 * Writes therefore never use a kept-alive upstream connection: a POST written into an idle connection
 * at the very moment the app closes it (idle timeout, or the app stopping in a deploy) would count as
 * sent, and be answered 502 instead of retried. POST and PATCH go to a second upstream group over the
 * same app hosts without `keepalive`, so each opens its own connection, and a refused connect is
 * retried. Reads keep their connections: a read that meets a closed one is simply retried.
 */

/** Where nginx is on Debian and Ubuntu (nginx-light, nginx-core). */
export const NGINX_BIN = '/usr/sbin/nginx'
/** The port the feed app listens on when env.app.port does not say. */
export const APP_PORT = 8080
/** 200 only when an app host answered its /readyz through this node (502/503 otherwise). */
export const NGINX_HEALTH_PATH = '/nginx-health'
/**
 * nginx's own limit on a request body (its default), above the app's (app.bodyLimit, 16 KB by default), so the
 * app's 413 is the one clients usually see; a body past this never reaches an app host.
 */
export const NGINX_BODY_LIMIT_BYTES = 1024 * 1024
const NGINX_BODY_LIMIT = '1m'
/** Reads (kept-alive connections) and writes (a new connection each), over the same app hosts. */
export const UPSTREAM_NAME = 'feed_app'
export const WRITES_UPSTREAM_NAME = 'feed_app_writes'

export interface NginxNodeFiles {
  /** The node's nginx folder (nginx's -p prefix). */
  dir: string
  conf: string
  upstreams: string
  pid: string
  errorLog: string
  accessLog: string
  temp: string
}

export function nginxNodeFiles(dir: string): NginxNodeFiles {
  return {
    dir,
    conf: path.join(dir, 'nginx.conf'),
    upstreams: path.join(dir, 'upstreams.conf'),
    pid: path.join(dir, 'nginx.pid'),
    errorLog: path.join(dir, 'logs', 'error.log'),
    accessLog: path.join(dir, 'logs', 'access.log'),
    temp: path.join(dir, 'tmp'),
  }
}

/** nginx's command line for a node: in the foreground, so the pid the lab records is the master's. */
export function nginxArgv(files: NginxNodeFiles, bin = NGINX_BIN): string[] {
  return [bin, '-p', files.dir, '-c', files.conf, '-e', files.errorLog, '-g', 'daemon off;']
}

export interface UpstreamServer {
  address: string
  port: number
}

/**
 * The upstream blocks: every app host, for reads with kept-alive connections and for writes without.
 * With no app host, one server marked down keeps the config valid (nginx then answers 502 until the
 * next render).
 */
export function renderUpstreams(servers: readonly UpstreamServer[]): string {
  // A host that failed is skipped for 2 s only, so a restarted app host gets traffic back soon.
  const lines = servers.length > 0 ? servers.map((s) => `    server ${s.address}:${s.port} max_fails=1 fail_timeout=2s;`) : ['    server 127.0.0.1:9 down;']
  return [
    `# The feed app hosts (${servers.length}); rendered from the inventory by \`feedops play nginx-upstreams\`.`,
    `upstream ${UPSTREAM_NAME} {`,
    ...lines,
    // Below the app's idle timeout (65 s), so nginx, not the app, closes an idle connection.
    '    keepalive 32;',
    '    keepalive_timeout 60s;',
    '}',
    '# Writes: a new connection each (see src/lb/nginx-conf.ts).',
    `upstream ${WRITES_UPSTREAM_NAME} {`,
    ...lines,
    '}',
    '',
  ].join('\n')
}

export interface NginxConfInput {
  files: NginxNodeFiles
  listen: UpstreamServer
}

/** The node's nginx.conf: one proxying server, the health location, logs and temp files in its folder. */
export function renderNginxConf({files, listen}: NginxConfInput): string {
  const proxy = [
    'proxy_pass http://$feed_upstream;',
    'proxy_http_version 1.1;',
    'proxy_set_header Connection "";',
    'proxy_set_header Host $host;',
    'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    'proxy_set_header X-Request-Id $request_id;',
    // See the module comment for what this retries for POSTs and why non_idempotent is absent.
    'proxy_next_upstream error timeout http_502 http_503;',
    // Every app host may be tried (a restarting batch can be several in a row), within 10 s in all.
    'proxy_next_upstream_timeout 10s;',
    'proxy_connect_timeout 1s;',
    'proxy_read_timeout 30s;',
  ]
  const indent = (n: number, ls: string[]) => ls.map((l) => `${' '.repeat(n)}${l}`)
  return [
    '# Written by feedops (NGINX node); upstreams.conf beside it holds the app hosts.',
    'worker_processes 1;',
    `pid ${files.pid};`,
    `error_log ${files.errorLog} warn;`,
    // After a reload, old workers close their client connections within this time.
    'worker_shutdown_timeout 10s;',
    'events {',
    '    worker_connections 4096;',
    '}',
    'http {',
    `    access_log ${files.accessLog} combined buffer=64k flush=1s;`,
    `    client_body_temp_path ${path.join(files.temp, 'body')};`,
    `    proxy_temp_path ${path.join(files.temp, 'proxy')};`,
    `    fastcgi_temp_path ${path.join(files.temp, 'fastcgi')};`,
    `    uwsgi_temp_path ${path.join(files.temp, 'uwsgi')};`,
    `    scgi_temp_path ${path.join(files.temp, 'scgi')};`,
    '    server_tokens off;',
    `    include ${files.upstreams};`,
    // nginx's own non-idempotent methods: the ones it will not retry once sent.
    '    map $request_method $feed_upstream {',
    `        POST ${WRITES_UPSTREAM_NAME};`,
    `        PATCH ${WRITES_UPSTREAM_NAME};`,
    `        default ${UPSTREAM_NAME};`,
    '    }',
    '    server {',
    `        listen ${listen.address}:${listen.port};`,
    // A body over this is refused by nginx itself (413, lingering close), in the app's JSON error shape.
    `        client_max_body_size ${NGINX_BODY_LIMIT};`,
    '        error_page 413 @body_too_large;',
    '        location @body_too_large {',
    '            default_type application/json;',
    `            return 413 '${JSON.stringify({error: {message: `request body is larger than ${NGINX_BODY_LIMIT_BYTES} bytes`}})}';`,
    '        }',
    '        location / {',
    ...indent(12, proxy),
    '        }',
    `        location = ${NGINX_HEALTH_PATH} {`,
    ...indent(12, proxy.map((l) => (l.startsWith('proxy_pass ') ? `proxy_pass http://${UPSTREAM_NAME}/readyz;` : l))),
    '            access_log off;',
    '        }',
    '    }',
    '}',
    '',
  ].join('\n')
}
