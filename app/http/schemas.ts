import {z} from 'zod'

import {parseId} from '../../src/shards/ids.js'

/** Input schemas. Ids travel as decimal strings (JSON numbers cannot hold 64 bits) and are checked with parseId. */

const MAX_SIGNED = (1n << 63n) - 1n

export const id = z.string().transform((text, ctx) => {
  let value: bigint
  try {
    value = parseId(text)
  } catch (err) {
    ctx.addIssue({code: 'custom', message: (err as Error).message})
    return z.NEVER
  }
  if (value === 0n || value > MAX_SIGNED) {
    ctx.addIssue({code: 'custom', message: `Id ${text} is out of range (1..${MAX_SIGNED}).`})
    return z.NEVER
  }
  return value
})

export const userParams = z.object({id})
export const followParams = z.object({id, targetId: id})
export const photoParams = z.object({id})
export const feedParams = z.object({userId: id})

export const feedQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  before: id.optional(),
})

export const createUserBody = z.strictObject({
  username: z.string().regex(/^[A-Za-z0-9_]{3,30}$/, '3 to 30 letters, digits or underscores'),
  name: z.string().trim().min(1).max(100),
})

export const createPhotoBody = z.strictObject({
  caption: z.string().max(2200).default(''),
  /** An S3 object key: no leading slash, no empty or dot segments, URL-safe characters. */
  s3Key: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[A-Za-z0-9!_.*'()-]+(\/[A-Za-z0-9!_.*'()-]+)*$/, 'an S3 key such as photos/2026/abc.jpg')
    .refine((k) => !k.split('/').some((seg) => seg === '.' || seg === '..'), 'no . or .. segments'),
})
