import {z} from 'zod'

/**
 * Input schemas. Ids travel as decimal strings (JSON numbers cannot hold 64 bits) in one strict form: digits
 * only, no sign, no leading zero, no spaces (so `/users/%2012` and `/users/012` are 400, not user 12), 1 up to
 * 2^63-1 (Postgres's bigint). Text that goes into Postgres must not hold NUL, which Postgres text refuses.
 */

const MAX_SIGNED = (1n << 63n) - 1n
const DECIMAL = /^[1-9][0-9]*$/
const NO_NUL = /^[^\0]*$/
const noNul = 'must not contain a NUL character'

export const id = z
  .string()
  .regex(DECIMAL, 'an id is a decimal number from 1 up, without sign, spaces or leading zeros')
  .max(19, `an id is at most ${MAX_SIGNED}`)
  .transform((text, ctx) => {
    const value = BigInt(text)
    if (value > MAX_SIGNED) {
      ctx.addIssue({code: 'custom', message: `Id ${text} is out of range (1..${MAX_SIGNED}).`})
      return z.NEVER
    }
    return value
  })

export const username = z.string().regex(/^[A-Za-z0-9_]{3,30}$/, '3 to 30 letters, digits or underscores')

export const userParams = z.object({id})
export const followParams = z.object({id, targetId: id})
export const photoParams = z.object({id})
export const feedParams = z.object({userId: id})
export const usernameParams = z.object({username})

export const feedQuery = z.object({
  limit: z
    .string()
    .regex(DECIMAL, 'limit is a decimal number from 1 to 100')
    .transform(Number)
    .pipe(z.number().max(100, 'limit is at most 100'))
    .default(20),
  before: id.optional(),
})

export const createUserBody = z.strictObject({
  username,
  name: z.string().regex(NO_NUL, noNul).trim().min(1).max(100),
})

export const createPhotoBody = z.strictObject({
  caption: z.string().regex(NO_NUL, noNul).max(2200).default(''),
  /** An S3 object key: no leading slash, no empty or dot segments, URL-safe characters. */
  s3Key: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[A-Za-z0-9!_.*'()-]+(\/[A-Za-z0-9!_.*'()-]+)*$/, 'an S3 key such as photos/2026/abc.jpg')
    .refine((k) => !k.split('/').some((seg) => seg === '.' || seg === '..'), 'no . or .. segments'),
})
