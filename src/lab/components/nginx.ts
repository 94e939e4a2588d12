import {existsSync, mkdirSync, writeFileSync} from 'node:fs'
import path from 'node:path'

import {NGINX_BIN, nginxArgv, nginxNodeFiles, renderNginxConf, renderUpstreams} from '../../lb/nginx-conf.js'
import {labPaths} from '../layout.js'
import {findBinary} from '../packages.js'
import type {DesiredProcess, LabComponent} from './types.js'

/**
 * NGINX nodes nginx1…nginxM: each a lab host (its sshd comes from the sshd component) running a real
 * nginx on 127.N.2.K:8080 in front of the app hosts. Config, upstreams, pid file, logs and temp files
 * live in the node's own folder (<host root>/nginx), so the `nginx-upstreams` playbook reaches them over
 * SSH as on any node. upstreams.conf is rendered here only when a node has none: after that the
 * playbook owns it (re-rendered from the inventory, then a reload), so `lab up --hosts` more does not
 * change what a running nginx proxies to until the playbook runs.
 */
export const nginxComponent: LabComponent = {
  id: 'nginx',
  title: 'NGINX nodes',

  packages: (ctx) => (ctx.layout.nginx.length > 0 ? [{package: 'nginx-light', binary: NGINX_BIN}] : []),

  desired: (ctx) =>
    ctx.layout.nginx.map((node): DesiredProcess => {
      const files = nginxNodeFiles(labPaths.nginxDir(ctx.dir, node.name))
      return {
        component: 'nginx',
        name: node.name,
        address: node.address,
        port: node.httpPort,
        argv: nginxArgv(files, findBinary(NGINX_BIN) ?? NGINX_BIN),
        // The master retitles itself "nginx: master process <argv>"; the config path stays in it.
        match: [`-c ${files.conf} `],
        // nginx writes its own errors here (-e); whatever it prints before that lands here too.
        logFile: files.errorLog,
      }
    }),

  async prepare(ctx) {
    const upstreams = ctx.layout.hosts.map((h) => ({address: h.address, port: h.httpPort}))
    for (const node of ctx.layout.nginx) {
      const files = nginxNodeFiles(labPaths.nginxDir(ctx.dir, node.name))
      mkdirSync(files.temp, {recursive: true})
      mkdirSync(path.dirname(files.errorLog), {recursive: true})
      writeFileSync(files.conf, renderNginxConf({files, listen: {address: node.address, port: node.httpPort}}))
      if (!existsSync(files.upstreams)) writeFileSync(files.upstreams, renderUpstreams(upstreams))
    }
  },
}
