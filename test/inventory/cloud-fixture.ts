/**
 * A cloud endpoint started in-process on 127.0.0.1 (ephemeral port) from a temp dir with a
 * cloud.json the test writes, for tests that need EC2 but no lab.
 */
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {environmentSchema, type EnvironmentConfig} from '../../src/config/schema.js'
import {writeCloudFile, type CloudFileInput} from '../../src/lab/cloud/cloud-file.js'
import {startCloudEndpoint, type CloudEndpoint} from '../../src/lab/cloud/endpoint.js'
import type {CloudService} from '../../src/lab/cloud/service.js'

export type InstanceInput = NonNullable<NonNullable<CloudFileInput['ec2']>['instances']>[number]

export interface FixtureCloud {
  dir: string
  endpoint: CloudEndpoint
  /** Request log lines the endpoint wrote. */
  log: string[]
  /** Rewrites cloud.json (the endpoint reads it on the next request). */
  write(instances: InstanceInput[], pageSize?: number): Promise<void>
  /** An ec2-inventory environment pointed at this endpoint. */
  env(inventory?: Record<string, unknown>, aws?: Record<string, unknown>): EnvironmentConfig
  stop(): Promise<void>
}

export async function startFixtureCloud(
  instances: InstanceInput[],
  opts: {pageSize?: number; services?: CloudService[]} = {},
): Promise<FixtureCloud> {
  const dir = mkdtempSync(path.join(tmpdir(), 'feedops-cloud-'))
  const write = (list: InstanceInput[], pageSize = opts.pageSize ?? 1000) =>
    writeCloudFile(dir, {listen: {host: '127.0.0.1', port: 0}, ec2: {pageSize, instances: list}})
  await write(instances)
  const log: string[] = []
  const endpoint = await startCloudEndpoint({
    dir,
    listen: {host: '127.0.0.1', port: 0},
    log: (line) => log.push(line),
    ...(opts.services ? {services: opts.services} : {}),
  })
  return {
    dir,
    endpoint,
    log,
    write,
    env: (inventory = {}, aws = {}) =>
      environmentSchema.parse({
        inventory: {source: 'ec2', filters: {Env: 'lab'}, ...inventory},
        aws: {region: 'us-east-1', endpoint: endpoint.url, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}, ...aws},
      }),
    stop: async () => {
      await endpoint.close()
      rmSync(dir, {recursive: true, force: true})
    },
  }
}

/** Instances app1..appN on 127.20.1.K, tagged Env/Role, running unless told otherwise. */
export function appInstances(count: number, tags: Record<string, string> = {Env: 'lab', Role: 'app'}, first = 1): InstanceInput[] {
  return Array.from({length: count}, (_, i) => {
    const k = first + i
    return {
      instanceId: `i-0lab${String(k).padStart(12, '0')}`,
      privateIp: `127.20.${1 + Math.floor(k / 250)}.${k % 250 || 250}`,
      state: 'running' as const,
      tags: {Name: `app${k}`, ...tags},
    }
  })
}
