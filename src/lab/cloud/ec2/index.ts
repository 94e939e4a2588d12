import type {CloudService} from '../service.js'
import {ec2ErrorXml} from '../xml.js'
import {describeInstances} from './describe-instances.js'

/** EC2 (query protocol "ec2"): the actions the lab answers. */
export const ec2Service: CloudService = {
  signingName: 'ec2',
  version: '2016-11-15',
  actions: {DescribeInstances: describeInstances},
  errorXml: ec2ErrorXml,
}
