import {existsSync, readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

import {UserError} from '../../errors.js'
import {writeCloudFile, type CloudFileInput} from '../cloud/cloud-file.js'
import {instanceIdFor, labPaths, sshHosts, type LabLayout} from '../layout.js'
import {elbEnabled, labDataPlane} from './haproxy.js'
import type {LabComponent} from './types.js'

/**
 * The lab's cloud endpoint (EC2, Classic ELB and ELBv2): a node process serving cloud.json on
 * 127.N.0.1:4566. The lab hosts are its EC2 instances (Role=app, or Role=nginx for NGINX nodes);
 * instances or sections others added to cloud.json are kept across `lab up`s.
 */

export const cloudServerScript = fileURLToPath(new URL('../cloud/server.js', import.meta.url))

export function labInstances(layout: LabLayout) {
  return sshHosts(layout).map((h) => ({
    instanceId: h.instanceId,
    privateIp: h.address,
    state: 'running' as const,
    launchTime: '2026-01-01T00:00:00.000Z',
    tags: {Name: h.name, Role: h.role, Env: 'lab'},
  }))
}

/** cloud.json for the layout, merged into what is there: lab instances replaced, the rest kept. */
export function cloudFileFor(dir: string, layout: LabLayout, elb = layout.nginx.length > 0): CloudFileInput {
  let current: Partial<CloudFileInput> & Record<string, unknown> = {}
  try {
    if (existsSync(labPaths.cloudJson(dir))) current = JSON.parse(readFileSync(labPaths.cloudJson(dir), 'utf8'))
  } catch {
    current = {} // unreadable: rewrite it whole
  }
  const labPrefix = instanceIdFor(layout.net, 0).slice(0, -8)
  const others = (current.ec2?.instances ?? []).filter((i) => !String(i.instanceId ?? '').startsWith(labPrefix))
  return {
    ...(current as object),
    listen: {host: layout.cloud.address, port: layout.cloud.port},
    ec2: {...current.ec2, pageSize: current.ec2?.pageSize ?? 1000, instances: [...labInstances(layout), ...others]},
    lb: elb ? labDataPlane(dir, layout) : undefined,
  }
}

export const cloudComponent: LabComponent = {
  id: 'cloud',
  title: 'cloud endpoint',
  packages: () => [],
  desired: (ctx) => {
    if (!ctx.cloud) return []
    const {address, port} = ctx.layout.cloud
    return [
      {
        component: 'cloud',
        name: 'cloud',
        address,
        port,
        argv: [process.execPath, cloudServerScript, '--dir', ctx.dir],
        match: [`${cloudServerScript} --dir ${ctx.dir}`],
        logFile: labPaths.log(ctx.dir, 'cloud'),
      },
    ]
  },
  check(ctx) {
    if (ctx.cloud && !existsSync(cloudServerScript)) {
      throw new UserError(`The cloud endpoint is not built (${cloudServerScript} is missing).`, {
        fix: 'Run `npx tsc -p .` in the feedops checkout, then `feedops lab up` again.',
      })
    }
  },
  async prepare(ctx) {
    // cloud.json is kept current even when the endpoint is off, so turning it on later just works.
    await writeCloudFile(ctx.dir, cloudFileFor(ctx.dir, ctx.layout, elbEnabled(ctx)))
  },
}
