import {createHash} from 'node:crypto'

import {backendName, serverName, type HealthCheck, type LbState, type Pool, type PoolMember} from '../cloud/lb-state.js'

/**
 * haproxy.cfg for the lab's ELB: one frontend per front (127.N.0.1:8000 for the Classic ELB), one
 * backend per pool, one server per registered (or still draining) member. The cloud endpoint adds
 * and removes servers at run time; this file is rendered from the same state, so a restart or a
 * reload (ConfigureHealthCheck changes `timeout check`) comes back with the same servers, and
 * `server-state-file` brings back their states (drain, maint, up/down) across a reload.
 */

export interface HaproxyFiles {
  socket: string
  config: string
  stateFile: string
  pidFile: string
}

export interface Front {
  pool: string
  address: string
  port: number
}

export interface RenderInput {
  files: HaproxyFiles
  fronts: Front[]
  state: LbState
  /** Instance id → private address, from the EC2 instances; members without one are left out. */
  addresses: ReadonlyMap<string, string>
}

export function poolKey(pool: Pick<Pool, 'kind' | 'name'>): string {
  return `${pool.kind}/${pool.name}`
}

/** The `node` name a config carries: a hash of the rest of it, which `show info` reports, so a reload can tell it took. */
export function configNode(config: string): string | undefined {
  return /^ {2}node (feedops-lab-[0-9a-f]+)$/m.exec(config)?.[1]
}

export function renderHaproxyConfig(input: RenderInput): string {
  const body = renderBody(input)
  const node = `feedops-lab-${createHash('sha256').update(body).digest('hex').slice(0, 16)}`
  return body.replace('\nglobal\n', `\nglobal\n  node ${node}\n`)
}

function renderBody(input: RenderInput): string {
  const {files, fronts, state} = input
  const lines = [
    '# Written by the feedops lab (haproxy component and cloud endpoint); rendered again on every change.',
    'global',
    `  stats socket ${files.socket} mode 600 level admin expose-fd listeners`,
    `  server-state-file ${files.stateFile}`,
    '  maxconn 4096',
    '',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  timeout http-keep-alive 10s',
    '  load-server-state-from-file global',
    // A connection the node refused never carried the request: try another node (an ELB answers 503 instead).
    '  retries 2',
    '  option redispatch 1',
    '',
  ]
  const pools = [...state.pools]
  for (const front of fronts) {
    const [kind, name] = [front.pool.slice(0, front.pool.indexOf('/')), front.pool.slice(front.pool.indexOf('/') + 1)]
    const backend = backendName({kind: kind as Pool['kind'], name})
    lines.push(`frontend ${backend}`, `  bind ${front.address}:${front.port}`, `  default_backend ${backend}`, '')
    // A front's pool that does not exist yet still gets an (empty) backend, so the front listens.
    if (!pools.some((p) => poolKey(p) === front.pool)) lines.push(`backend ${backend}`, '  balance roundrobin', '')
  }
  for (const pool of pools) {
    const matcher = pool.kind === 'targetgroup' ? pool.matcher : '200'
    lines.push(`backend ${backendName(pool)}`, '  balance roundrobin', ...checkDirectives(pool.healthCheck, matcher))
    for (const m of [...pool.members, ...pool.draining]) {
      const address = input.addresses.get(m.id)
      if (address) lines.push(`  server ${serverName(pool, m)} ${address}:${m.port} ${serverCheckArgs(pool, m).join(' ')}`)
    }
    lines.push('')
  }
  return `${lines.join('\n')}\n`
}

/** Backend-level lines of a health check: its timeout and, for HTTP(S), the request and the expected 200. */
export function checkDirectives(check: HealthCheck, matcher = '200'): string[] {
  const lines = [`  timeout check ${check.timeoutSeconds}s`]
  if (check.protocol === 'HTTP' || check.protocol === 'HTTPS') {
    lines.push(`  option httpchk GET ${check.path ?? '/'}`, `  http-check expect ${expectStatus(matcher)}`)
  }
  return lines
}

/** ELBv2's matcher ("200", "200,202", "200-299") as HAProxy's `http-check expect`. */
export function expectStatus(matcher: string): string {
  if (/^[0-9]{3}$/.test(matcher)) return `status ${matcher}`
  const codes = matcher.split(',').flatMap((part) => {
    const [lo, hi] = part.split('-').map(Number)
    return hi === undefined ? [lo!] : Array.from({length: hi - lo! + 1}, (_, i) => lo! + i)
  })
  return `rstatus ^(${codes.join('|')})$`
}

/** A server's check settings: inter = Interval, rise = HealthyThreshold, fall = UnhealthyThreshold, port. */
export function serverCheckArgs(pool: Pool, member: PoolMember): string[] {
  const c = pool.healthCheck
  const args = ['check', 'inter', `${c.intervalSeconds}s`, 'rise', String(c.healthyThreshold), 'fall', String(c.unhealthyThreshold)]
  const checkPort = pool.kind === 'targetgroup' && pool.healthCheckPort === 'traffic-port' ? member.port : c.port
  if (checkPort !== member.port) args.push('port', String(checkPort))
  if (c.protocol === 'HTTPS' || c.protocol === 'SSL') args.push('check-ssl', 'verify', 'none')
  return args
}
