import {createHash} from 'node:crypto'
import {homedir} from 'node:os'
import path from 'node:path'

import type {LbSettings} from '../config/lb.js'
import type {EnvironmentConfig} from '../config/schema.js'
import {redactUrl} from '../config/urls.js'
import {UserError} from '../errors.js'
import {loadInventory, type Host} from '../inventory/index.js'
import {classicProvider} from './classic.js'
import {elbv2Provider} from './elbv2.js'
import type {ProbeTarget} from './probe.js'
import type {LbProvider} from './provider.js'
import {fileStateStore} from './state/file.js'
import type {LbStateStore} from './state/store.js'

/** A node behind the load balancer: an inventory host with the lb role, its id there and where to probe it. */
export interface LbNode extends ProbeTarget {
  name: string
  /** Instance id, or address for an ELBv2 ip target group. */
  id: string
}

/** Everything an lb command works with, opened in the order that touches nothing on bad config. */
export interface LbContext {
  env: EnvironmentConfig
  lb: LbSettings
  provider: LbProvider
  store: LbStateStore
  nodes: LbNode[]
  close(): Promise<void>
}

/**
 * The environment's lb section, or one clear error (exit 2) before anything is called: no section, or
 * `state: redis` without a redis section. The schema (src/config/lb.ts) checked the rest at load.
 */
export function lbSettings(env: EnvironmentConfig, environment: string): LbSettings {
  if (!env.lb) {
    throw new UserError(`Environment "${environment}" has no lb section, so there is no load balancer to rotate nodes in.`, {
      fix: 'Add lb: {provider: classic, name: YOUR-ELB} (or provider: elbv2 with targetGroupArn) to the environment in feedops.yml.',
    })
  }
  if (env.lb.state === 'redis' && !env.redis) {
    throw new UserError(`Environment "${environment}" keeps lb state in Redis (lb.state: redis) but has no redis section.`, {
      fix: 'Add redis: {url: redis://HOST:6379} to the environment, or set lb.state: file.',
    })
  }
  return env.lb
}

/** The load balancer's identity, for state keys and file names: the ELB's name, the target group's name and id. */
export function lbIdentity(lb: LbSettings): string {
  if (lb.provider === 'classic') return `classic-${lb.name}`
  const m = /targetgroup\/([^/]+)\/([0-9a-f]+)$/.exec(lb.targetGroupArn)
  return m ? `elbv2-${m[1]}-${m[2]}` : `elbv2-${createHash('sha256').update(lb.targetGroupArn).digest('hex').slice(0, 16)}`
}

/**
 * lb.stateFile, else the lab's folder (each lab its own state), else $XDG_STATE_HOME/feedops (default
 * ~/.local/state/feedops), one file per load balancer.
 */
export function stateFilePath(env: EnvironmentConfig, lb: LbSettings): string {
  const expand = (p: string) => (p === '~' || p.startsWith('~/') ? path.join(homedir(), p.slice(1)) : p)
  if (lb.stateFile) return path.resolve(expand(lb.stateFile))
  const name = `lb-state-${lbIdentity(lb)}.json`
  if (env.lab?.dir) return path.resolve(env.lab.dir, name)
  const base = process.env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state')
  return path.join(base, 'feedops', name)
}

export function lbProvider(env: EnvironmentConfig, lb: LbSettings): LbProvider {
  return lb.provider === 'classic' ? classicProvider(lb, env.aws) : elbv2Provider(lb, env.aws)
}

export async function lbStateStore(env: EnvironmentConfig, lb: LbSettings): Promise<LbStateStore> {
  if (lb.state === 'file') return fileStateStore(stateFilePath(env, lb), lb.lockStaleSeconds)
  const {Redis} = await import('ioredis')
  const url = env.redis!.url
  const redis = new Redis(url, {lazyConnect: true, connectTimeout: 5000, maxRetriesPerRequest: 2, retryStrategy: () => null})
  redis.on('error', () => undefined) // reported by the call that failed
  try {
    await redis.connect()
  } catch (err) {
    redis.disconnect()
    throw new UserError(`Cannot reach Redis at ${redactUrl(url)} for the lb state (lb.state: redis): ${(err as Error).message}.`, {
      fix: 'Check redis.url and that Redis is up, or set lb.state: file.',
      cause: err,
    })
  }
  const {redisStateStore} = await import('./state/redis.js')
  return redisStateStore(redis, `feedops:lb:${lbIdentity(lb)}`, lb.lockStaleSeconds, redactUrl(url))
}

/** The inventory's hosts with the lb role, as nodes; a node the load balancer cannot name is bad config. */
export function lbNodes(hosts: readonly Host[], lb: LbSettings): LbNode[] {
  const nodes = hosts.filter((h) => h.roles.includes(lb.role))
  return nodes.map((h) => {
    const byAddress = lb.provider === 'elbv2' && lb.targetType === 'ip'
    const id = byAddress ? h.address : h.instanceId
    if (!id) {
      throw new UserError(`Node ${h.name} has no EC2 instance id, which ${lb.provider === 'classic' ? 'a Classic ELB' : 'an instance target group'} registers nodes by.`, {
        fix: lb.provider === 'classic' ? 'Use inventory.source: ec2 for the NGINX nodes.' : 'Use inventory.source: ec2, or lb.targetType: ip with an ip target group.',
      })
    }
    return {name: h.name, id, address: h.address, port: lb.probe.port, path: lb.probe.path}
  })
}

/** Opens what an lb command needs: settings (exit 2 when bad), the inventory's nodes, the state store, the provider. */
export async function openLb(env: EnvironmentConfig, environment: string): Promise<LbContext> {
  const lb = lbSettings(env, environment)
  const nodes = lbNodes(await loadInventory(env), lb)
  if (nodes.length === 0) {
    throw new UserError(`The inventory has no host with role ${lb.role}, so there is no node to put behind the load balancer.`, {
      fix: `Tag the NGINX nodes with role ${lb.role}, or set lb.role.`,
    })
  }
  const store = await lbStateStore(env, lb)
  const provider = lbProvider(env, lb)
  return {
    env,
    lb,
    provider,
    store,
    nodes,
    close: async () => {
      provider.close()
      await store.close()
    },
  }
}

/** A node named on the command line: by name or address. */
export function findNode(nodes: readonly LbNode[], key: string): LbNode {
  const node = nodes.find((n) => n.name === key) ?? nodes.find((n) => n.address === key || n.id === key)
  if (!node) {
    throw new UserError(`No node "${key}" behind the load balancer.`, {fix: `Name one of: ${nodes.map((n) => n.name).join(', ')}.`})
  }
  return node
}
