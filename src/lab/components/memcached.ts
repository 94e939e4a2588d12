import {labPaths} from '../layout.js'
import {findBinary} from '../packages.js'
import type {LabComponent} from './types.js'

/** One Memcached on 127.N.0.1:11212, TCP only, 256 MB. */
export const memcachedComponent: LabComponent = {
  id: 'memcached',
  title: 'Memcached',
  packages: (ctx) => (ctx.memcached ? [{package: 'memcached', binary: 'memcached'}] : []),
  desired: (ctx) => {
    if (!ctx.memcached) return []
    const {address, port} = ctx.layout.memcached
    return [
      {
        component: 'memcached',
        name: 'memcached',
        address,
        port,
        argv: [findBinary('memcached') ?? 'memcached', '-l', address, '-p', String(port), '-U', '0', '-m', '256',
          ...(ctx.isRoot ? ['-u', 'root'] : [])],
        match: [`-l ${address} -p ${port} `],
        logFile: labPaths.log(ctx.dir, 'memcached'),
      },
    ]
  },
}
