import {cloudComponent} from './cloud.js'
import {haproxyComponent} from './haproxy.js'
import {memcachedComponent} from './memcached.js'
import {nginxComponent} from './nginx.js'
import {pgbouncerComponent} from './pgbouncer.js'
import {postgresComponent} from './postgres.js'
import {redisComponent} from './redis.js'
import {sshdComponent} from './sshd.js'
import type {LabComponent} from './types.js'

/** Every part of the lab, in the order status lists them. Adding a part = one module + one line here. */
export const labComponents: LabComponent[] = [
  sshdComponent,
  nginxComponent,
  postgresComponent,
  pgbouncerComponent,
  redisComponent,
  memcachedComponent,
  cloudComponent,
  haproxyComponent,
]

export function componentById(id: string): LabComponent | undefined {
  return labComponents.find((c) => c.id === id)
}
