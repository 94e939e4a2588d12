/**
 * Schemas built the first time they are used. Building zod schemas is a noticeable part of a CLI start (each
 * object, refinement and default is a few objects and closures), and most commands read few sections of
 * feedops.yml: `lazy(() => z.object(…))` defers the build, and `.optional()` or `.default()` on a lazy
 * schema is lazy too, so an environment schema can name every section and still build only those a config
 * has (see `pickPresent`). The definitions stay ordinary zod code inside the arrow.
 */
import type {z} from 'zod'

const OPTIONAL = Symbol('lazy optional schema')
const CHAINED = new Set<PropertyKey>(['optional', 'default'])

/** `build()` runs once, on the first use of the returned schema (or of a schema chained from it). */
export function lazy<T extends object>(build: () => T, optional = false): T {
  let built: T | undefined
  const target = (): T => (built ??= build())
  return new Proxy({} as T, {
    get(_, key) {
      if (key === OPTIONAL) return optional
      if (CHAINED.has(key)) {
        return (...args: unknown[]) =>
          lazy(() => (Reflect.get(target(), key) as (...a: unknown[]) => object).apply(target(), args), key === 'optional')
      }
      return Reflect.get(target(), key)
    },
    has: (_, key) => Reflect.has(target(), key),
    set: (_, key, value) => Reflect.set(target(), key, value),
    ownKeys: () => Reflect.ownKeys(target()),
    getOwnPropertyDescriptor(_, key) {
      const d = Reflect.getOwnPropertyDescriptor(target(), key)
      return d ? {...d, configurable: true} : d
    },
    getPrototypeOf: () => Reflect.getPrototypeOf(target()),
  })
}

/**
 * The keys of an object schema's shape that a value with `present` keys needs checked: those it has, and
 * those that are not a lazy `.optional()` (required, defaulted, or plain zod), which must be checked absent.
 */
export function pickPresent(shape: Record<string, z.ZodType>, present: ReadonlySet<string>): Record<string, true> {
  const picked: Record<string, true> = {}
  for (const [key, schema] of Object.entries(shape)) {
    if (present.has(key) || (schema as unknown as {[OPTIONAL]?: boolean})[OPTIONAL] !== true) picked[key] = true
  }
  return picked
}
