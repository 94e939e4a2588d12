import {z} from 'zod'

/**
 * feedops.yml. Top level: `environments` (one block per environment, e.g. lab, prod) and an optional
 * `defaultEnvironment`. Later sections (app, lb, shards) are declared here so one schema validates
 * the whole file; each is optional until the feature that reads it needs it.
 */

const hostName = z.string().min(1).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits, dot, dash, underscore or colon')

export const sshSchema = z
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
  .strict()

export const staticHostSchema = z
  .object({
    name: hostName,
    address: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().min(1).optional(),
    roles: z.array(z.string().min(1)).default([]),
    tags: z.record(z.string(), z.string()).default({}),
  })
  .strict()

export const awsSchema = z
  .object({
    region: z.string().min(1).optional(),
    /** Only for the lab or another API-compatible endpoint; AWS itself needs none. */
    endpoint: z.url().optional(),
    profile: z.string().min(1).optional(),
    /** Only for a lab endpoint; real credentials come from the standard AWS chain. */
    credentials: z.object({accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1)}).strict().optional(),
  })
  .strict()

export const inventorySchema = z.discriminatedUnion('source', [
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
])

const postgresUrl = z.string().regex(/^postgres(ql)?:\/\//, 'a postgres:// URL')

export const shardsSchema = z
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
      .min(1),
    /** Number of logical shards (power of two not required; at most 8192 = 13 bits). */
    logical: z.number().int().min(1).max(8192).default(8192),
    /** Custom epoch of the 64-bit ids (ISO time). */
    epoch: z.iso.datetime({offset: true}).default('2011-01-01T00:00:00Z'),
  })
  .strict()

export const environmentSchema = z
  .object({
    ssh: sshSchema.default(sshSchema.parse({})),
    inventory: inventorySchema,
    aws: awsSchema.default({}),
    shards: shardsSchema.optional(),
    redis: z.object({url: z.string().regex(/^rediss?:\/\//, 'a redis:// URL')}).strict().optional(),
    memcached: z.object({servers: z.array(z.string().regex(/^[^:\s]+:\d+$/, 'host:port')).min(1)}).strict().optional(),
    /** Filled in by the app/deploy and lb features. */
    app: z.record(z.string(), z.unknown()).optional(),
    lb: z.record(z.string(), z.unknown()).optional(),
    /** Written by `feedops lab up`: where the lab keeps its state. */
    lab: z.object({dir: z.string().min(1)}).strict().optional(),
  })
  .strict()

export const configFileSchema = z
  .object({
    defaultEnvironment: z.string().min(1).optional(),
    environments: z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/, 'lower-case name'), environmentSchema).refine(
      (envs) => Object.keys(envs).length > 0,
      'at least one environment',
    ),
  })
  .strict()

export type SshSettings = z.infer<typeof sshSchema>
export type StaticHost = z.infer<typeof staticHostSchema>
export type AwsSettings = z.infer<typeof awsSchema>
export type InventorySettings = z.infer<typeof inventorySchema>
export type ShardsSettings = z.infer<typeof shardsSchema>
export type EnvironmentConfig = z.infer<typeof environmentSchema>
export type ConfigFile = z.infer<typeof configFileSchema>
