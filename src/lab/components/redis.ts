import {mkdirSync} from 'node:fs'

import {labPaths} from '../layout.js'
import {findBinary} from '../packages.js'
import type {LabComponent} from './types.js'

/** One Redis on 127.N.0.1:6380, nothing persisted. */
export const redisComponent: LabComponent = {
  id: 'redis',
  title: 'Redis',
  packages: (ctx) => (ctx.redis ? [{package: 'redis-server', binary: 'redis-server'}] : []),
  desired: (ctx) => {
    if (!ctx.redis) return []
    const {address, port} = ctx.layout.redis
    return [
      {
        component: 'redis',
        name: 'redis',
        address,
        port,
        // --protected-mode no: it binds to a loopback address only, and clients may come from 127.0.0.1.
        argv: [findBinary('redis-server') ?? 'redis-server', '--bind', address, '--port', String(port), '--save', '',
          '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'no', '--dir', labPaths.redisDir(ctx.dir)],
        // Redis retitles itself "<program> <address>:<port>" soon after start; both forms hold these.
        match: ['redis-server', `${address}`],
        logFile: labPaths.log(ctx.dir, 'redis'),
      },
    ]
  },
  async prepare(ctx) {
    if (ctx.redis) mkdirSync(labPaths.redisDir(ctx.dir), {recursive: true})
  },
}
