import type {ActionHandler, CloudRequest, CloudService} from '../service.js'
import {queryErrorXml, queryResponseXml, type XmlObject} from '../xml.js'
import {deregisterInstances, describeInstanceHealth, registerInstances} from './instances.js'
import {
  configureHealthCheck,
  createLoadBalancer,
  describeLoadBalancerAttributes,
  describeLoadBalancers,
  modifyLoadBalancerAttributes,
} from './load-balancers.js'

export const elbNamespace = 'http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/'

function action(run: (req: CloudRequest) => Promise<XmlObject>): ActionHandler {
  return async (req) => queryResponseXml(req.action, await run(req), req.requestId, elbNamespace)
}

/**
 * Classic ELB (query protocol, Version 2012-06-01), over lb.json and HAProxy. It shares the signing
 * name `elasticloadbalancing` with ELBv2, so the endpoint tells them apart by Version.
 */
export const elbService: CloudService = {
  signingName: 'elasticloadbalancing',
  version: '2012-06-01',
  actions: {
    CreateLoadBalancer: action(createLoadBalancer),
    DescribeLoadBalancers: action(describeLoadBalancers),
    ConfigureHealthCheck: action(configureHealthCheck),
    DescribeLoadBalancerAttributes: action(describeLoadBalancerAttributes),
    ModifyLoadBalancerAttributes: action(modifyLoadBalancerAttributes),
    RegisterInstancesWithLoadBalancer: action(registerInstances),
    DeregisterInstancesFromLoadBalancer: action(deregisterInstances),
    DescribeInstanceHealth: action(describeInstanceHealth),
  },
  errorXml: (err, requestId) => queryErrorXml(err, requestId, elbNamespace),
}
