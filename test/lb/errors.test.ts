import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {AccessPointNotFoundException, InvalidEndPointException} from '@aws-sdk/client-elastic-load-balancing'
import {InvalidTargetException, TargetGroupNotFoundException} from '@aws-sdk/client-elastic-load-balancing-v2'

import {lbApiError} from '../../src/lb/errors.js'

const aws = {region: 'us-east-1', endpoint: 'http://lab:secret@127.0.0.1:4566'}
const meta = {$metadata: {httpStatusCode: 400, attempts: 1}}

// The SDK's own exception classes, as its deserializers build them from AWS's error documents.
describe('ELB API errors as one sentence and a fix', () => {
  it('missing load balancer or target group: bad config (exit 2)', () => {
    const e = lbApiError(new AccessPointNotFoundException({message: 'There is no ACTIVE Load Balancer named feed', ...meta}), 'DescribeLoadBalancers', 'Classic ELB feed', aws, 4)
    assert.equal(e.exitCode, 2)
    assert.match(e.message, /^Classic ELB feed does not exist \(endpoint http:\/\/\*\*\*:\*\*\*@127\.0\.0\.1:4566|^Classic ELB feed does not exist/)
    assert.doesNotMatch(e.message + e.fix, /secret/)
    const t = lbApiError(new TargetGroupNotFoundException({message: 'One or more target groups not found', ...meta}), 'DescribeTargetHealth', 'target group feed/0123', aws, 4)
    assert.equal(t.exitCode, 2)
    assert.match(t.fix!, /targetGroupArn/)
  })

  it('an instance the load balancer cannot take: the action failed (exit 1)', () => {
    for (const err of [new InvalidEndPointException({message: 'The specified EndPoint is not valid', ...meta}), new InvalidTargetException({message: 'bad target', ...meta})]) {
      const e = lbApiError(err, 'RegisterTargets', 'target group x', aws, 4)
      assert.equal(e.exitCode, 1)
      assert.match(e.message, /refused RegisterTargets/)
    }
  })

  it('throttling after the retries, and credentials missing or expired', () => {
    const throttled = Object.assign(new Error('Rate exceeded'), {name: 'Throttling', $metadata: {httpStatusCode: 400, attempts: 4}})
    const e = lbApiError(throttled, 'DescribeInstanceHealth', 'Classic ELB feed', aws, 4)
    assert.equal(e.message.startsWith('Classic ELB feed kept refusing DescribeInstanceHealth with "Rate exceeded" (throttled 4 times in a row'), true)
    assert.equal(e.exitCode, 1)
    const none = lbApiError(Object.assign(new Error('Could not load credentials from any providers'), {name: 'CredentialsProviderError'}), 'x', 'Classic ELB feed', {}, 4)
    assert.match(none.message, /No AWS credentials found/)
    const expired = lbApiError(Object.assign(new Error('The security token included in the request is expired'), {name: 'ExpiredToken', ...meta}), 'x', 'Classic ELB feed', aws, 4)
    assert.match(expired.message, /have expired/)
    assert.match(expired.fix!, /Refresh/)
  })

  it('an endpoint that does not answer', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4566'), {code: 'ECONNREFUSED', $metadata: {attempts: 4}})
    const e = lbApiError(refused, 'DescribeLoadBalancers', 'Classic ELB feed', aws, 4)
    assert.match(e.message, /Cannot reach the ELB API .*ECONNREFUSED, after 4 attempts/)
    assert.match(e.fix!, /lab up/)
  })
})
