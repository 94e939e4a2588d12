import type {DescribeInstancesCommandInput, EC2ClientConfig, Filter, Instance} from '@aws-sdk/client-ec2'

import type {AwsSettings, InventorySettings} from '../config/schema.js'
import {redactUrl} from '../config/urls.js'
import {markPhase, notePhase} from '../start-timing.js'
import {isUserError, UserError} from '../errors.js'
import {HOST_NAME_RULE, isValidHostName, type Host} from './host.js'

export type Ec2InventorySettings = Extract<InventorySettings, {source: 'ec2'}>

/** Client knobs tests turn down; the defaults suit AWS. */
export interface Ec2ClientOptions {
  maxAttempts?: number
  /** Milliseconds to open a connection. */
  connectionTimeout?: number
  /** Milliseconds for one request and its response. */
  requestTimeout?: number
  /** Instances asked for per DescribeInstances page (default 1000, the API's largest). */
  pageSize?: number
  /** Called with each page's running hosts as the page arrives, before the next one is asked for. */
  onHosts?: (hosts: Host[]) => void
  /** Abandons the listing: its connections are closed and it rejects. */
  signal?: AbortSignal
}

/**
 * inventory.source: ec2 — running instances matching the tag filters, via DescribeInstances (every
 * page). The SDK is loaded on first use (ec2-sdk.ts) so commands that never touch EC2 start fast.
 */
export async function ec2Hosts(inv: Ec2InventorySettings, aws: AwsSettings, opts: Ec2ClientOptions = {}): Promise<Host[]> {
  // The SDK warns on every run under Node 20 (our supported runtime); that noise must not reach cron mail.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const {EC2Client, paginateDescribeInstances} = await import('./ec2-sdk.js')

  const config: EC2ClientConfig = {
    maxAttempts: opts.maxAttempts ?? 3,
    requestHandler: {
      connectionTimeout: opts.connectionTimeout ?? 5000,
      requestTimeout: opts.requestTimeout ?? 30000,
      throwOnRequestTimeout: true,
    },
  }
  if (aws.region) config.region = aws.region
  if (aws.endpoint) config.endpoint = aws.endpoint
  if (aws.profile) config.profile = aws.profile
  if (aws.credentials) config.credentials = {...aws.credentials}

  const filters = ec2Filters(inv)
  const where = describeTarget(aws)
  const client = new EC2Client(config)
  const hosts: Host[] = []
  let pages = 0
  try {
    const input: DescribeInstancesCommandInput = {Filters: filters}
    const paginator = paginateDescribeInstances({client, pageSize: opts.pageSize ?? 1000}, input, ...(opts.signal ? [{abortSignal: opts.signal}] : []))
    for await (const page of paginator) {
      const instances: Instance[] = (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])
      // The state filter is sent, but an endpoint that ignored it must not hand us stopped hosts.
      const running = instances.filter((i) => i.State?.Name === 'running').map((i) => instanceHost(i, inv))
      hosts.push(...running)
      markPhase('inventory page')
      notePhase('inventory page', `${++pages} page${pages === 1 ? '' : 's'}`)
      if (running.length > 0) opts.onHosts?.(running)
    }
  } catch (err) {
    throw isUserError(err) ? err : ec2UserError(err, where, aws)
  } finally {
    client.destroy()
  }

  if (hosts.length === 0) {
    throw new UserError(`No running EC2 instance matches ${describeFilters(filters)} (${where}).`, {
      fix: 'Check inventory.filters in the config and that the instances are running' + (aws.endpoint?.includes('127.') ? ' (is the lab up?).' : '.'),
    })
  }
  return hosts
}

export function ec2Filters(inv: Ec2InventorySettings): Filter[] {
  return [
    ...Object.entries(inv.filters).map(([key, value]) => ({Name: `tag:${key}`, Values: [value]})),
    {Name: 'instance-state-name', Values: ['running']},
  ]
}

function instanceHost(i: Instance, inv: Ec2InventorySettings): Host {
  const tags: Record<string, string> = {}
  for (const t of i.Tags ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? ''
  const instanceId = i.InstanceId ?? '(no id)'
  const name = tags[inv.nameTag]?.trim() || instanceId
  if (!isValidHostName(name)) {
    // Tags are free text: a newline in a Name would forge another host's output lines.
    // (printed escaped, as every error message is)
    throw new UserError(`EC2 instance ${instanceId} has a ${inv.nameTag} tag that is not a host name: "${name}" (${HOST_NAME_RULE}).`, {
      fix: `Rename the instance's ${inv.nameTag} tag, or set inventory.nameTag to a tag that holds host names.`,
    })
  }
  const address = inv.address === 'public' ? i.PublicIpAddress : i.PrivateIpAddress
  if (!address) {
    throw new UserError(`EC2 instance ${name} (${instanceId}) has no ${inv.address} IP address.`, {
      fix: inv.address === 'public' ? 'Set inventory.address to private, or give the instance a public IP.' : 'Check the instance in the EC2 console.',
    })
  }
  const roles = (tags[inv.roleTag] ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r !== '')
  return {name, address, roles: [...new Set(roles)], tags, instanceId}
}

function describeFilters(filters: Filter[]): string {
  return filters.map((f) => `${f.Name}=${(f.Values ?? []).join('|')}`).join(', ')
}

function describeTarget(aws: AwsSettings): string {
  const parts = [aws.endpoint ? `endpoint ${redactUrl(aws.endpoint)}` : undefined, aws.region ? `region ${aws.region}` : undefined]
  return parts.filter(Boolean).join(', ') || 'the default AWS region'
}

const accessDeniedCodes = new Set([
  'UnauthorizedOperation',
  'AuthFailure',
  'AccessDenied',
  'AccessDeniedException',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'MissingAuthenticationToken',
  'ExpiredToken',
  'RequestExpired',
])

const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE'])

/** Turns what the SDK throws into one sentence and a fix. */
export function ec2UserError(err: unknown, where: string, aws: AwsSettings): UserError {
  const e = err as Error & {code?: string; $fault?: string; $metadata?: {httpStatusCode?: number}; errors?: unknown[]}
  const name = e?.name ?? ''
  const message = e?.message ?? String(err)
  const code = e?.code ?? (e?.errors?.[0] as {code?: string} | undefined)?.code
  // The endpoint may carry credentials (http://key:secret@host): never print them.
  const endpoint = aws.endpoint === undefined ? undefined : redactUrl(aws.endpoint)

  if (name === 'CredentialsProviderError' || (/could not load credentials/i.test(message) && !e.$metadata?.httpStatusCode)) {
    return new UserError(`No AWS credentials found for the EC2 inventory (${where}).`, {
      fix: 'Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, set aws.profile in the config, or run on a host with an instance role.',
      cause: err,
    })
  }
  if (/region is missing/i.test(message)) {
    return new UserError('No AWS region is set for the EC2 inventory.', {
      fix: 'Set aws.region in the config, or AWS_REGION in the environment.',
      cause: err,
    })
  }
  if (accessDeniedCodes.has(name)) {
    return new UserError(`EC2 refused DescribeInstances (${where}): ${name}: ${message}`, {
      fix: 'Use credentials allowed to call ec2:DescribeInstances (check aws.profile / aws.credentials and the IAM policy).',
      cause: err,
    })
  }
  if ((code && networkCodes.has(code)) || name === 'TimeoutError' || name === 'RequestTimeout' || name === 'AbortError') {
    return new UserError(`Cannot reach the EC2 endpoint (${where}): ${code ?? name}.`, {
      fix: endpoint
        ? `Check that ${endpoint} is up${endpoint.includes('127.') ? ' (`feedops lab up` starts the lab endpoint)' : ''}, or fix aws.endpoint.`
        : 'Check the network path to AWS (proxy, DNS, firewall) and aws.region.',
      cause: err,
    })
  }
  if (e?.$metadata?.httpStatusCode !== undefined) {
    return new UserError(`EC2 DescribeInstances failed (${where}): ${name}: ${message}`, {
      fix: endpoint ? `Check that aws.endpoint (${endpoint}) is an EC2 API endpoint.` : 'Retry; if it persists, check the AWS status page.',
      cause: err,
    })
  }
  return new UserError(`EC2 inventory failed (${where}): ${message}`, {fix: 'Check the aws section of the config.', cause: err})
}
