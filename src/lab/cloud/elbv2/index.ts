import type {ActionHandler, CloudRequest, CloudService} from '../service.js'
import {queryErrorXml, queryResponseXml, type XmlObject} from '../xml.js'
import {
  createTargetGroup,
  describeTargetGroupAttributes,
  describeTargetGroups,
  modifyTargetGroupAttributes,
} from './target-groups.js'
import {deregisterTargets, describeTargetHealth, registerTargets} from './targets.js'

export const elbv2Namespace = 'http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/'

function action(run: (req: CloudRequest) => Promise<XmlObject | undefined>): ActionHandler {
  return async (req) => queryResponseXml(req.action, await run(req), req.requestId, elbv2Namespace)
}

/** ELBv2 target groups (query protocol, Version 2015-12-01), over the same lb.json and HAProxy as Classic ELB. */
export const elbv2Service: CloudService = {
  signingName: 'elasticloadbalancing',
  version: '2015-12-01',
  actions: {
    CreateTargetGroup: action(createTargetGroup),
    DescribeTargetGroups: action(describeTargetGroups),
    DescribeTargetGroupAttributes: action(describeTargetGroupAttributes),
    ModifyTargetGroupAttributes: action(modifyTargetGroupAttributes),
    RegisterTargets: action(registerTargets),
    DeregisterTargets: action(deregisterTargets),
    DescribeTargetHealth: action(describeTargetHealth),
  },
  errorXml: (err, requestId) => queryErrorXml(err, requestId, elbv2Namespace),
}
