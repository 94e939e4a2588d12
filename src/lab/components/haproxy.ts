import {existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {UserError} from '../../errors.js'
import {readLbState} from '../cloud/lb-state.js'
import type {DataPlane} from '../cloud/lb-plane.js'
import {renderHaproxyConfig} from '../haproxy/config.js'
import {LAB_LB_NAME, LAB_TARGET_GROUP_NAME, labPaths, sshHosts, type LabLayout} from '../layout.js'
import {findBinary} from '../packages.js'
import type {LabComponent, LabContext} from './types.js'

/**
 * The lab ELB's data plane: one HAProxy (Debian's `haproxy`) in master-worker mode, the Classic
 * load balancer's front on 127.N.0.1:8000 and the target group's on :8001, a runtime API socket
 * (level admin) in <lab>/haproxy/. The cloud endpoint's ELB APIs drive it through that socket
 * (src/lab/cloud/lb-plane.ts); `lab up` then creates `feed-lab` and `feed-lab-tg` over the NGINX
 * nodes through those APIs (src/lab/load-balancers.ts). It runs with the cloud endpoint and NGINX nodes.
 */

export const HAPROXY_BIN = 'haproxy'

export function elbEnabled(ctx: Pick<LabContext, 'cloud' | 'layout'>): boolean {
  return ctx.cloud && ctx.layout.nginx.length > 0
}

/** Where HAProxy's files are and what it serves, as cloud.json's `lb` section tells the endpoint. */
export function labDataPlane(dir: string, layout: LabLayout): DataPlane {
  const d = labPaths.haproxyDir(dir)
  return {
    haproxy: {
      socket: path.join(d, 'admin.sock'),
      config: path.join(d, 'haproxy.cfg'),
      stateFile: path.join(d, 'server-state'),
      pidFile: path.join(d, 'haproxy.pid'),
    },
    fronts: [
      {pool: `classic/${LAB_LB_NAME}`, address: layout.elb.address, port: layout.elb.port},
      {pool: `targetgroup/${LAB_TARGET_GROUP_NAME}`, address: layout.elb.targetGroup.address, port: layout.elb.targetGroup.port},
    ],
  }
}

export const haproxyComponent: LabComponent = {
  id: 'haproxy',
  title: 'ELB (HAProxy)',
  packages: (ctx) => (elbEnabled(ctx) ? [{package: 'haproxy', binary: HAPROXY_BIN}] : []),
  desired: (ctx) => {
    if (!elbEnabled(ctx)) return []
    const files = labDataPlane(ctx.dir, ctx.layout).haproxy
    return [
      {
        component: 'haproxy',
        name: 'elb',
        address: ctx.layout.elb.address,
        port: ctx.layout.elb.port,
        // -W: master-worker (a reload re-executes the master in place, same pid); -db: stays in the foreground.
        argv: [findBinary(HAPROXY_BIN) ?? HAPROXY_BIN, '-W', '-db', '-f', files.config, '-p', files.pidFile],
        match: [`-f ${files.config} `],
        logFile: labPaths.log(ctx.dir, 'haproxy'),
      },
    ]
  },
  check(ctx) {
    if (!elbEnabled(ctx)) return
    const {socket} = labDataPlane(ctx.dir, ctx.layout).haproxy
    // A Unix socket's path holds at most 107 bytes (sun_path): HAProxy could not bind it.
    if (Buffer.byteLength(socket) > 107) {
      throw new UserError(`The lab dir's path is too long for HAProxy's runtime socket (${socket}).`, {fix: 'Use a shorter --dir, or run the lab without NGINX nodes (--nginx 0).'})
    }
  },
  async prepare(ctx, toStart) {
    if (!elbEnabled(ctx) || toStart.length === 0) return
    const plane = labDataPlane(ctx.dir, ctx.layout)
    mkdirSync(labPaths.haproxyDir(ctx.dir), {recursive: true})
    // The members lb.json keeps, at the addresses the lab hosts have (cloud.json is being rewritten beside us).
    const addresses = new Map(sshHosts(ctx.layout).map((h) => [h.instanceId, h.address]))
    for (const [id, ip] of otherInstances(ctx.dir)) if (!addresses.has(id)) addresses.set(id, ip)
    const state = await readLbState(ctx.dir)
    writeFileSync(plane.haproxy.config, renderHaproxyConfig({files: plane.haproxy, fronts: plane.fronts, state, addresses}))
    // Saved states are for a reload of a running HAProxy; a fresh start checks every member anew.
    rmSync(plane.haproxy.stateFile, {force: true})
  },
  async settle(ctx) {
    if (!elbEnabled(ctx)) return
    const {ensureLabLoadBalancers} = await import('../load-balancers.js') // the ELB SDK clients, only when needed
    await ensureLabLoadBalancers(ctx.layout, ctx.progress)
  },
}

/** Instances someone else added to cloud.json (kept there across ups). */
function otherInstances(dir: string): [string, string][] {
  try {
    if (!existsSync(labPaths.cloudJson(dir))) return []
    const cloud = JSON.parse(readFileSync(labPaths.cloudJson(dir), 'utf8')) as {ec2?: {instances?: {instanceId: string; privateIp: string}[]}}
    return (cloud.ec2?.instances ?? []).map((i) => [i.instanceId, i.privateIp])
  } catch {
    return []
  }
}
