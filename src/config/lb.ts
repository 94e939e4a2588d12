import {z} from 'zod'

/**
 * The `lb` section: which load balancer fronts the NGINX nodes and how `feedops lb rotate` swaps them in
 * and out (src/lb). Every duration says its unit in its name; every count is bounded, and the bounds that
 * depend on each other are checked together (a lock that goes stale while a pass may still be draining a
 * node would let a second pass act beside it).
 *
 *   lb: {provider: classic, name: feed-lab}
 *   lb: {provider: elbv2, targetGroupArn: 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/feed/0123456789abcdef'}
 */

const count = (min: number, max: number, fallback: number) => z.number().int().min(min).max(max).default(fallback)

const common = {
  /** The inventory role of the nodes behind the load balancer. */
  role: z.string().min(1).default('nginx'),
  probe: z
    .object({
      /** The deep health check (200 only when an app host answered through the node): src/lb/nginx-conf.ts. */
      path: z.string().startsWith('/').default('/nginx-health'),
      /** The node's HTTP port; the lab's and nginx-conf's 8080 by default. */
      port: z.number().int().min(1).max(65535).default(8080),
      /** One probe's bound; a node that does not answer within it fails the probe. */
      timeoutMs: count(50, 60_000, 2000),
    })
    .strict()
    .default({path: '/nginx-health', port: 8080, timeoutMs: 2000}),
  /** K: consecutive failed probes before a node is deregistered. */
  failsOut: count(1, 100, 3),
  /** J: consecutive passed probes before a node that was taken out is registered again. */
  passesIn: count(1, 100, 2),
  /** Never fewer nodes registered than this, whatever the probes say (drains by hand included, unless --force). */
  minInService: count(0, 1000, 1),
  /** At most this many nodes deregistered by one pass. */
  maxRemovePerRun: count(1, 1000, 1),
  /** Bound on waiting out the load balancer's connection draining after a deregistration. */
  drainTimeoutS: count(0, 3600, 300),
  /** Where the kept counts, drains by hand and the pass lock live: a file, or Redis (env.redis) shared by several operator machines. */
  state: z.enum(['file', 'redis']).default('file'),
  /** The state file (state: file); default lb-state.<environment>.json beside feedops.yml. A relative path is from feedops.yml's folder. */
  stateFile: z.string().min(1).optional(),
  /** A pass lock older than this is taken over (its owner died without releasing it). */
  lockStaleSeconds: count(10, 86_400, 600),
  /** Calls per API request, first try included, with the SDK's standard retry strategy (throttling, 5xx, timeouts). */
  apiMaxAttempts: count(1, 10, 4),
  /** Bound on one API request and its answer. */
  apiTimeoutMs: count(100, 120_000, 10_000),
}

const classicSchema = z
  .object({
    provider: z.literal('classic'),
    /** The Classic ELB's name (instances are registered by EC2 instance id). */
    name: z
      .string()
      .min(1)
      .max(32)
      .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/, 'a Classic ELB name (letters, digits and inner dashes, at most 32)'),
    ...common,
  })
  .strict()

const elbv2Schema = z
  .object({
    provider: z.literal('elbv2'),
    /** The target group the nodes are registered in (ALB or NLB). */
    targetGroupArn: z
      .string()
      .regex(/^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup\/[A-Za-z0-9-]{1,32}\/[0-9a-f]{16}$/, 'a target group ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID)'),
    /** Targets are EC2 instance ids (target type instance) or the nodes' addresses (target type ip). */
    targetType: z.enum(['instance', 'ip']).default('instance'),
    /** The port registered with each target; default: the target group's. */
    targetPort: z.number().int().min(1).max(65535).optional(),
    ...common,
  })
  .strict()

export const lbSchema = z.discriminatedUnion('provider', [classicSchema, elbv2Schema]).superRefine((lb, ctx) => {
  if (lb.lockStaleSeconds <= lb.drainTimeoutS + 60) {
    ctx.addIssue({
      code: 'custom',
      path: ['lockStaleSeconds'],
      message: `must be more than drainTimeoutS + 60 (${lb.drainTimeoutS + 60}): a pass may hold the lock while it waits out draining`,
    })
  }
})

export type LbSettings = z.infer<typeof lbSchema>
export type ClassicLbSettings = Extract<LbSettings, {provider: 'classic'}>
export type Elbv2LbSettings = Extract<LbSettings, {provider: 'elbv2'}>
