import {ec2Service} from './ec2/index.js'
import {elbService} from './elb/index.js'
import {elbv2Service} from './elbv2/index.js'
import type {CloudService} from './service.js'

/**
 * Every service the lab's cloud endpoint answers. Add a service module here. Classic ELB and ELBv2
 * share a signing name; the endpoint picks between them by the request's Version.
 */
export const cloudServices: readonly CloudService[] = [ec2Service, elbService, elbv2Service]
