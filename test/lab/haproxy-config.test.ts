import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {parseHealthCheck} from '../../src/lab/cloud/elb/load-balancers.js'
import {memberHealth} from '../../src/lab/cloud/lb-plane.js'
import type {ClassicPool, TargetGroupPool} from '../../src/lab/cloud/lb-state.js'
import {configNode, expectStatus, renderHaproxyConfig} from '../../src/lab/haproxy/config.js'
import type {ServerState} from '../../src/lab/haproxy/runtime.js'

/** The lab ELB's pure parts: HAProxy's config from lb.json, health from HAProxy's server states, AWS's check limits. */

const classic: ClassicPool = {
  kind: 'classic',
  name: 'feed-lab',
  createdAt: '2026-01-01T00:00:00.000Z',
  listeners: [{protocol: 'HTTP', loadBalancerPort: 80, instanceProtocol: 'HTTP', instancePort: 8080}],
  availabilityZones: ['us-east-1a'],
  scheme: 'internet-facing',
  healthCheck: {protocol: 'HTTP', port: 8081, path: '/nginx-health', intervalSeconds: 7, timeoutSeconds: 3, healthyThreshold: 3, unhealthyThreshold: 4},
  attributes: {connectionDraining: {enabled: true, timeout: 5}, connectionSettings: {idleTimeout: 60}, crossZoneLoadBalancing: {enabled: false}, accessLog: {enabled: false}},
  members: [{id: 'i-01', port: 8080, registeredAt: ''}, {id: 'i-gone', port: 8080, registeredAt: ''}],
  draining: [{id: 'i-02', port: 8080, registeredAt: '', since: '', until: ''}],
}
const group: TargetGroupPool = {
  kind: 'targetgroup',
  name: 'tg',
  arn: 'arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/tg/0',
  createdAt: '',
  protocol: 'TCP',
  port: 8080,
  vpcId: 'vpc-0',
  healthCheck: {protocol: 'TCP', port: 8080, intervalSeconds: 5, timeoutSeconds: 2, healthyThreshold: 2, unhealthyThreshold: 2},
  healthCheckPort: 'traffic-port',
  matcher: '200',
  loadBalancerArns: [],
  attributes: {},
  members: [{id: 'i-01', port: 9000, registeredAt: ''}],
  draining: [],
}
const files = {socket: '/lab/haproxy/admin.sock', config: '/lab/haproxy/haproxy.cfg', stateFile: '/lab/haproxy/server-state', pidFile: '/lab/haproxy/haproxy.pid'}

describe('lab ELB: haproxy.cfg from lb.json', () => {
  const cfg = renderHaproxyConfig({
    files,
    fronts: [{pool: 'classic/feed-lab', address: '127.9.0.1', port: 8000}, {pool: 'targetgroup/absent', address: '127.9.0.1', port: 8001}],
    state: {pools: [classic, group]},
    addresses: new Map([['i-01', '127.9.2.1'], ['i-02', '127.9.2.2']]),
  })

  it('has the admin socket, the state file, one frontend per front and an empty backend for a front without its pool', () => {
    assert.match(cfg, /stats socket \/lab\/haproxy\/admin.sock mode 600 level admin/)
    assert.match(cfg, /server-state-file \/lab\/haproxy\/server-state\n/)
    assert.match(cfg, /load-server-state-from-file global/)
    assert.match(cfg, /frontend elb-feed-lab\n {2}bind 127.9.0.1:8000\n {2}default_backend elb-feed-lab\n/)
    assert.match(cfg, /frontend tg-absent\n {2}bind 127.9.0.1:8001\n {2}default_backend tg-absent\n\nbackend tg-absent\n/)
  })

  it('maps the health check to timeout check, httpchk, inter, rise, fall and the check port; draining members stay until removed', () => {
    assert.match(cfg, /backend elb-feed-lab\n {2}balance roundrobin\n {2}timeout check 3s\n {2}option httpchk GET \/nginx-health\n {2}http-check expect status 200\n/)
    assert.match(cfg, /\n {2}server i-01 127.9.2.1:8080 check inter 7s rise 3 fall 4 port 8081\n/)
    assert.match(cfg, /\n {2}server i-02 127.9.2.2:8080 check inter 7s rise 3 fall 4 port 8081\n/)
    assert.doesNotMatch(cfg, /i-gone/, 'an instance without an address is left out')
    // traffic-port: the check goes where the traffic goes, whatever the target's port.
    assert.match(cfg, /backend tg-tg\n {2}balance roundrobin\n {2}timeout check 2s\n {2}server i-01-9000 127.9.2.1:9000 check inter 5s rise 2 fall 2\n/)
  })

  it('names the config by a hash of it (HAProxy reports it in show info, so a reload can tell it took)', () => {
    const node = configNode(cfg)
    assert.match(node ?? '', /^feedops-lab-[0-9a-f]{16}$/)
    const other = renderHaproxyConfig({files, fronts: [], state: {pools: [classic]}, addresses: new Map()})
    assert.notEqual(configNode(other), node)
  })

  it("turns ELBv2 matchers into HAProxy's expect", () => {
    assert.equal(expectStatus('200'), 'status 200')
    assert.equal(expectStatus('200,202'), 'rstatus ^(200|202)$')
    assert.equal(expectStatus('200-203'), 'rstatus ^(200|201|202|203)$')
  })
})

describe("lab ELB: a member's health from HAProxy's state", () => {
  const base: ServerState = {backend: 'b', server: 's', address: '', port: 8080, opState: 0, adminState: 0, checkStatus: 'L4CON', checkHealth: 0, rise: 2, fall: 2, sessions: 0, downTransitions: 1, status: 'DOWN'}
  it('UP is healthy; down before its first failure is registering; down after passes but below rise is recovering', () => {
    assert.deepEqual(memberHealth({...base, opState: 2, checkStatus: 'L4OK'}), {kind: 'healthy'})
    assert.deepEqual(memberHealth({...base, checkStatus: 'INI'}), {kind: 'registering'})
    assert.deepEqual(memberHealth({...base, checkStatus: 'L4OK', checkHealth: 1}), {kind: 'registering'})
    assert.deepEqual(memberHealth({...base, checkStatus: 'L4OK', checkHealth: 1, downTransitions: 2}), {kind: 'recovering'})
  })
  it('a new member whose checks fail is registering until it has had UnhealthyThreshold checks (interval × threshold)', () => {
    const check = {protocol: 'TCP' as const, port: 8080, intervalSeconds: 5, timeoutSeconds: 2, healthyThreshold: 2, unhealthyThreshold: 2}
    assert.deepEqual(memberHealth(base, {sinceRegisteredMs: 9000, check}), {kind: 'registering'})
    assert.deepEqual(memberHealth(base, {sinceRegisteredMs: 10_000, check}), {kind: 'failing', timeout: false, httpCode: undefined})
    assert.deepEqual(memberHealth({...base, downTransitions: 2}, {sinceRegisteredMs: 1000, check}).kind, 'failing', 'one that was up and went down is failing')
  })
  it('failed checks are failing (timeouts and HTTP codes told apart); maintenance or no state is unknown', () => {
    assert.deepEqual(memberHealth(base), {kind: 'failing', timeout: false, httpCode: undefined})
    assert.deepEqual(memberHealth({...base, checkStatus: 'L4TOUT', downTransitions: 3}), {kind: 'failing', timeout: true, httpCode: undefined})
    assert.deepEqual(memberHealth({...base, checkStatus: 'L7STS', checkCode: 502, downTransitions: 3}), {kind: 'failing', timeout: false, httpCode: 502})
    assert.deepEqual(memberHealth({...base, adminState: 1}), {kind: 'unknown'})
    assert.deepEqual(memberHealth(undefined), {kind: 'unknown'})
  })
})

describe("lab ELB: ConfigureHealthCheck's limits are AWS's", () => {
  const params = (o: Record<string, string>) => new Map(Object.entries(o).map(([k, v]) => [`HealthCheck.${k}`, v]))
  const ok = {Target: 'TCP:8080', Interval: '5', Timeout: '2', HealthyThreshold: '2', UnhealthyThreshold: '2'}
  it('reads TCP and HTTP targets', () => {
    assert.deepEqual(parseHealthCheck(params(ok)), {protocol: 'TCP', port: 8080, intervalSeconds: 5, timeoutSeconds: 2, healthyThreshold: 2, unhealthyThreshold: 2})
    assert.equal(parseHealthCheck(params({...ok, Target: 'HTTP:80/nginx-health'})).path, '/nginx-health')
  })
  it('refuses what AWS refuses', () => {
    for (const bad of [{Target: 'HTTP:8080'}, {Target: 'TCP:8080/x'}, {Target: 'UDP:53'}, {Interval: '4'}, {Timeout: '1'}, {Interval: '5', Timeout: '5'}, {HealthyThreshold: '11'}, {UnhealthyThreshold: '1'}]) {
      assert.throws(() => parseHealthCheck(params({...ok, ...bad})), (e: Error & {code?: string}) => e.code === 'ValidationError', JSON.stringify(bad))
    }
  })
})
