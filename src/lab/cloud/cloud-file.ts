import {readFile, rename, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {z} from 'zod'

/**
 * cloud.json: what the lab's cloud endpoint serves. The lab writes it; the endpoint re-reads it on
 * every request, so tests can add instances or lower the page size while the endpoint runs.
 */

export const instanceStates = ['pending', 'running', 'shutting-down', 'terminated', 'stopping', 'stopped'] as const
export type InstanceStateName = (typeof instanceStates)[number]

/** EC2's numeric state codes (the low byte of instanceState.code). */
export const instanceStateCodes: Record<InstanceStateName, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
}

export const cloudInstanceSchema = z
  .object({
    instanceId: z.string().regex(/^i-[0-9a-z]+$/, 'an instance id like i-0123abcd'),
    privateIp: z.ipv4(),
    publicIp: z.ipv4().optional(),
    state: z.enum(instanceStates).default('running'),
    launchTime: z.iso.datetime({offset: true}).default('2026-01-01T00:00:00.000Z'),
    imageId: z.string().min(1).default('ami-0lab0000000000000'),
    instanceType: z.string().min(1).default('t3.micro'),
    /** Defaults to the signing region of the request + "a". */
    availabilityZone: z.string().min(1).optional(),
    tags: z.record(z.string(), z.string()).default({}),
  })
  .strict()

export const cloudFileSchema = z.object({
  listen: z.object({host: z.string().min(1), port: z.number().int().min(0).max(65535)}).strict(),
  ec2: z
    .object({
      /** Largest page DescribeInstances returns, whatever MaxResults asks for. */
      pageSize: z.number().int().min(1).max(1000).default(1000),
      instances: z.array(cloudInstanceSchema).default([]),
    })
    .default({pageSize: 1000, instances: []}),
  /** The lab ELB's data plane (HAProxy); without it the ELB APIs answer but nothing forwards traffic. */
  lb: z
    .object({
      haproxy: z
        .object({
          /** The runtime API's stats socket (level admin). */
          socket: z.string().min(1),
          config: z.string().min(1),
          /** Where server states are saved across a reload (server-state-file). */
          stateFile: z.string().min(1),
          /** The master's pid file: a reload is SIGUSR2 to it. */
          pidFile: z.string().min(1),
        })
        .strict(),
      /** Where each pool ("classic/NAME" or "targetgroup/NAME") is served on loopback. */
      fronts: z.array(z.object({pool: z.string().regex(/^(classic|targetgroup)\/.+$/), address: z.ipv4(), port: z.number().int().min(1).max(65535)}).strict()).default([]),
    })
    .strict()
    .optional(),
  /** Faults a test injects: every Nth matching call answers Throttling; every matching call waits delayMs first, or answers `error`. */
  faults: z
    .object({
      throttleEvery: z.number().int().min(1).optional(),
      delayMs: z.number().int().min(0).max(60_000).optional(),
      /** Every matching call answers this AWS error instead (ExpiredToken, InvalidClientTokenId…). */
      error: z.object({code: z.string().min(1), message: z.string(), status: z.number().int().min(400).max(599).default(400)}).strict().optional(),
      /** Only these signing names (ec2, elasticloadbalancing); default all. */
      services: z.array(z.string()).optional(),
      /** Only these actions; default all. */
      actions: z.array(z.string()).optional(),
    })
    .strict()
    .optional(),
})

export type CloudFile = z.infer<typeof cloudFileSchema>
export type CloudFileInput = z.input<typeof cloudFileSchema>
export type CloudInstance = z.infer<typeof cloudInstanceSchema>

export function cloudFilePath(dir: string): string {
  return path.join(dir, 'cloud.json')
}

/** Reads and validates <dir>/cloud.json; throws an Error naming the file and the bad key. */
export async function readCloudFile(dir: string): Promise<CloudFile> {
  const file = cloudFilePath(dir)
  const text = await readFile(file, 'utf8')
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`)
  }
  const result = cloudFileSchema.safeParse(raw)
  if (!result.success) {
    const issue = result.error.issues[0]!
    throw new Error(`${file} is invalid: ${issue.path.join('.') || '(top level)'}: ${issue.message}`)
  }
  return result.data
}

/** Writes cloud.json atomically (temp file + rename) so the endpoint never reads half a file. */
export async function writeCloudFile(dir: string, cloud: CloudFileInput): Promise<void> {
  const file = cloudFilePath(dir)
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`
  await writeFile(tmp, `${JSON.stringify(cloud, null, 2)}\n`)
  await rename(tmp, file)
}
