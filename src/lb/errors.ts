import type {AwsSettings} from '../config/schema.js'
import {redactUrl} from '../config/urls.js'
import {ExitCode, UserError} from '../errors.js'

/**
 * What the ELB SDKs throw, as one sentence and a fix each. `action` is the API action that failed and
 * `label` the load balancer ("Classic ELB feed-lab"). Throttling arrives here only after the SDK's own
 * retries (lb.apiMaxAttempts) ran out.
 */
export function lbApiError(err: unknown, action: string, label: string, aws: AwsSettings, attempts: number): UserError {
  const e = err as Error & {code?: string; Code?: string; $metadata?: {httpStatusCode?: number; attempts?: number}; errors?: unknown[]}
  const name = e?.name ?? ''
  const code = e?.Code ?? e?.code ?? (e?.errors?.[0] as {code?: string} | undefined)?.code ?? ''
  const message = e?.message ?? String(err)
  const endpoint = aws.endpoint === undefined ? undefined : redactUrl(aws.endpoint)
  const where = [endpoint ? `endpoint ${endpoint}` : undefined, aws.region ? `region ${aws.region}` : undefined].filter(Boolean).join(', ') || 'the default AWS region'
  const is = (...names: string[]) => names.includes(name) || names.includes(code)
  const failed = {cause: err, exitCode: ExitCode.failed}

  if (is('AccessPointNotFoundException', 'AccessPointNotFound', 'LoadBalancerNotFound', 'LoadBalancerNotFoundException')) {
    return new UserError(`${label} does not exist (${where}).`, {
      fix: 'Check lb.name against `aws elb describe-load-balancers` in this region (or is the lab up?).',
      cause: err,
    })
  }
  if (is('TargetGroupNotFoundException', 'TargetGroupNotFound')) {
    return new UserError(`${label} does not exist (${where}).`, {
      fix: 'Check lb.targetGroupArn against `aws elbv2 describe-target-groups` (its region and account too).',
      cause: err,
    })
  }
  if (is('InvalidEndPointException', 'InvalidInstance', 'InvalidEndPoint', 'InvalidTargetException', 'InvalidTarget')) {
    return new UserError(`${label} refused ${action}: ${message}`, {
      fix: 'The instance is not one the load balancer can take (stopped, terminated, another VPC or zone): check it with `feedops hosts --role nginx` and the EC2 console.',
      ...failed,
    })
  }
  if (is('Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException') || /rate exceeded/i.test(message)) {
    return new UserError(`${label} kept refusing ${action} with "Rate exceeded" (throttled ${e.$metadata?.attempts ?? attempts} times in a row, ${where}).`, {
      fix: 'Another tool is calling the ELB API hard: space out the runs (a cron pass a minute is plenty), or raise lb.apiMaxAttempts.',
      ...failed,
    })
  }
  if (name === 'CredentialsProviderError' || (/could not load credentials/i.test(message) && !e.$metadata?.httpStatusCode)) {
    return new UserError(`No AWS credentials found for ${label} (${where}).`, {
      fix: 'Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, set aws.profile in the config, or run on a host with an instance role.',
      cause: err,
    })
  }
  if (is('ExpiredToken', 'ExpiredTokenException', 'RequestExpired', 'TokenRefreshRequired')) {
    return new UserError(`The AWS credentials for ${label} have expired (${name || code}).`, {
      fix: 'Refresh them (`aws sso login`, a new session token, or the instance role), then run this again.',
      cause: err,
    })
  }
  if (is('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'AuthFailure', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'MissingAuthenticationToken')) {
    return new UserError(`AWS refused ${action} on ${label} (${where}): ${name || code}: ${message}`, {
      fix: `Use credentials allowed to call elasticloadbalancing:${action} (check aws.profile / aws.credentials and the IAM policy).`,
      cause: err,
    })
  }
  if (/region is missing/i.test(message)) {
    return new UserError(`No AWS region is set for ${label}.`, {fix: 'Set aws.region in the config, or AWS_REGION in the environment.', cause: err})
  }
  const net = code || (e as {cause?: {code?: string}}).cause?.code || ''
  if (/^E[A-Z]+$/.test(net) || name === 'TimeoutError' || name === 'RequestTimeout' || name === 'AbortError') {
    return new UserError(`Cannot reach the ELB API for ${label} (${where}): ${net || name}, after ${e.$metadata?.attempts ?? attempts} attempts.`, {
      fix: endpoint
        ? `Check that ${endpoint} is up${endpoint.includes('127.') ? ' (`feedops lab up` starts the lab endpoint)' : ''}, or fix aws.endpoint.`
        : 'Check the network path to AWS (proxy, DNS, firewall) and aws.region.',
      ...failed,
    })
  }
  if (e?.$metadata?.httpStatusCode !== undefined) {
    return new UserError(`${label}: ${action} failed: ${name || code}: ${message}`, {
      fix: endpoint ? `Check that aws.endpoint (${endpoint}) answers the Elastic Load Balancing API.` : 'Retry; if it persists, check the AWS status page.',
      ...failed,
    })
  }
  return new UserError(`${label}: ${action} failed: ${message}`, {fix: 'Check the aws and lb sections of the config.', ...failed})
}
