import {createRequire} from 'node:module'

import type {AwsSettings} from '../config/schema.js'

const require = createRequire(import.meta.url)

import type {ELB_CLASSIC_EXPORTS, ELB_V2_EXPORTS} from './sdk-exports.js'

export type ClassicSdk = Pick<typeof import('@aws-sdk/client-elastic-load-balancing'), (typeof ELB_CLASSIC_EXPORTS)[number]>
export type Elbv2Sdk = Pick<typeof import('@aws-sdk/client-elastic-load-balancing-v2'), (typeof ELB_V2_EXPORTS)[number]>

/**
 * The ELB SDKs as `npm run build` bundles them (dist/vendor/elb-sdk.cjs, see src/build/bundle-vendor.ts:
 * one tree-shaken file loads in a fraction of the packages' hundreds), or the installed packages when
 * running from the sources. Loaded on first use, so `lb` commands that fail on their config never load it.
 */
function loadBundle(): {classic: ClassicSdk; elbv2: Elbv2Sdk} {
  try {
    return require('../../vendor/elb-sdk.cjs') as {classic: ClassicSdk; elbv2: Elbv2Sdk}
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err
    return {
      classic: require('@aws-sdk/client-elastic-load-balancing') as ClassicSdk,
      elbv2: require('@aws-sdk/client-elastic-load-balancing-v2') as Elbv2Sdk,
    }
  }
}

let bundle: {classic: ClassicSdk; elbv2: Elbv2Sdk} | undefined
export function classicSdk(): ClassicSdk {
  return (bundle ??= loadBundle()).classic
}
export function elbv2Sdk(): Elbv2Sdk {
  return (bundle ??= loadBundle()).elbv2
}

export interface LbClientOptions {
  /** Calls per request, the first included; the SDK's standard strategy backs off between them. */
  maxAttempts: number
  /** Milliseconds for one request and its answer. */
  requestTimeoutMs: number
}

/**
 * Client settings as the EC2 inventory builds them (src/inventory/ec2.ts): region, the lab's endpoint,
 * profile or the lab's static credentials, and bounded time. Retries are the SDK's own "standard" mode:
 * throttling (Rate exceeded), 5xx and timeouts are retried with jittered exponential backoff, at most
 * maxAttempts calls, throttling drawing on the client's retry budget.
 */
export function lbClientConfig(aws: AwsSettings, opts: LbClientOptions): Record<string, unknown> {
  // The SDK warns on every run under Node 20 (our supported runtime); that noise must not reach cron mail.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const config: Record<string, unknown> = {
    maxAttempts: opts.maxAttempts,
    retryMode: 'standard',
    requestHandler: {connectionTimeout: Math.min(5000, opts.requestTimeoutMs), requestTimeout: opts.requestTimeoutMs, throwOnRequestTimeout: true},
  }
  if (aws.region) config.region = aws.region
  if (aws.endpoint) config.endpoint = aws.endpoint
  if (aws.profile) config.profile = aws.profile
  if (aws.credentials) config.credentials = {...aws.credentials}
  return config
}
