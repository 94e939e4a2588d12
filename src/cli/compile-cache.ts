/**
 * A V8 code cache for the CommonJS modules the CLI loads (oclif, yaml, ssh2, the bundled AWS SDK…).
 *
 * Why: every `feedops` invocation is a fresh Node process, and compiling its dependencies is most of
 * its start-up (about 0.4 s of CPU for `feedops hosts` on a 2-core lab machine) — time during which no
 * SSH connection is being made. Node ≥ 22.1 has this built in (module.enableCompileCache), which we
 * use when present. On Node 20 we hook Module.prototype._compile the way the v8-compile-cache package
 * does; that package cannot be used because modules it compiles lose dynamic import(), which oclif
 * needs. Here modules that contain `import(` are simply left to Node.
 *
 * Each module's cache lives in one file named after its path; the file starts with the SHA-1 of the
 * source it was made from, so an edited or upgraded module never runs stale bytecode (V8 only checks
 * the source length). Caches are written at exit, atomically (rename), and every file-system error is
 * ignored: the cache can only make a run faster, never fail it. FEEDOPS_COMPILE_CACHE=0 turns it off.
 */
import {createHash} from 'node:crypto'
import {mkdirSync, readFileSync, renameSync, writeFileSync} from 'node:fs'
import Module from 'node:module'
import {homedir} from 'node:os'
import path from 'node:path'
import vm from 'node:vm'

interface InternalModule {
  exports: unknown
  filename: string
  require(id: string): unknown
  _compile(content: string, filename: string): unknown
}

interface ModuleStatics {
  prototype: InternalModule
  wrap(content: string): string
  _resolveFilename(request: string, parent: InternalModule, isMain: boolean, options?: {paths?: string[]}): string
  _resolveLookupPaths(request: string, parent: InternalModule): string[] | null
  _extensions: unknown
  _cache: unknown
  enableCompileCache?: (dir?: string) => unknown
}

const M = Module as unknown as ModuleStatics

export function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache')
  return path.join(base, 'feedops', `v8-${process.version}-${process.arch}`)
}

/** What the hook did in this process (for tests); null when Node's own cache or nothing is in use. */
export interface CompileCacheStats {
  /** Modules run from cached bytecode. */
  hits: number
  /** Modules compiled (no cache, a stale one, or one V8 rejected); their cache is written at exit. */
  misses: number
  /** Modules left to Node because they use import(). */
  skipped: number
}

export function installCompileCache(dir = cacheDir()): CompileCacheStats | null {
  if (process.env.FEEDOPS_COMPILE_CACHE === '0') return null
  if (typeof M.enableCompileCache === 'function') {
    M.enableCompileCache(dir)
    return null
  }
  const stats: CompileCacheStats = {hits: 0, misses: 0, skipped: 0}
  const original = M.prototype._compile
  const pending: {file: string; hash: Buffer; script: vm.Script}[] = []

  M.prototype._compile = function compileWithCache(this: InternalModule, content: string, filename: string): unknown {
    if (content.includes('import(')) {
      stats.skipped++
      return original.call(this, content, filename)
    }
    const hash = createHash('sha1').update(content).digest()
    const file = path.join(dir, createHash('sha1').update(filename).digest('hex'))
    let cachedData: Buffer | undefined
    try {
      const stored = readFileSync(file)
      if (stored.subarray(0, hash.length).equals(hash)) cachedData = stored.subarray(hash.length)
    } catch {
      // no cache yet
    }
    const script = new vm.Script(M.wrap(content), {filename, cachedData})
    if (cachedData === undefined || script.cachedDataRejected) {
      stats.misses++
      pending.push({file, hash, script})
    } else {
      stats.hits++
    }

    const mod = this
    const require = Object.assign((id: string) => mod.require(id), {
      resolve: Object.assign(
        (request: string, options?: {paths?: string[]}) => M._resolveFilename(request, mod, false, options),
        {paths: (request: string) => M._resolveLookupPaths(request, mod)},
      ),
      main: process.mainModule,
      extensions: M._extensions,
      cache: M._cache,
    })
    const wrapper = script.runInThisContext({displayErrors: true}) as (...args: unknown[]) => unknown
    return wrapper.call(mod.exports, mod.exports, require, mod, filename, path.dirname(filename))
  }

  process.once('exit', () => {
    if (pending.length === 0) return
    try {
      mkdirSync(dir, {recursive: true})
      for (const {file, hash, script} of pending) {
        const tmp = `${file}.${process.pid}.tmp`
        writeFileSync(tmp, Buffer.concat([hash, script.createCachedData()]))
        renameSync(tmp, file)
      }
    } catch {
      // a read-only home or a full disk: run without the cache
    }
  })
  return stats
}
