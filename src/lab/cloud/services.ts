import {ec2Service} from './ec2/index.js'
import type {CloudService} from './service.js'

/** Every service the lab's cloud endpoint answers. Add a service module here (e.g. Classic ELB). */
export const cloudServices: readonly CloudService[] = [ec2Service]
