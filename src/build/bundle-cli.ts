/**
 * Bundles the CLI into one CommonJS file, dist/cli/feedops.cjs, and makes its V8 code cache (run by
 * `npm run build`, after write-manifest). bin/run.js starts from it through src/cli/cli-loader.ts.
 *
 * Why: a fresh Node process per invocation spent most of `feedops hosts` finding, reading and compiling
 * hundreds of modules (ESM loader, CommonJS loader, oclif, yaml, zod, the SDK) before its first request.
 * One script compiled from a code cache taken once every module has run does that work once, at build
 * time, the way the app's release does (src/deploy/app-loader.ts).
 *
 * What is in it: oclif's runtime, every command (exported as COMMANDS for oclif's `explicit` command
 * discovery, each behind a getter so only the command being run is evaluated), src/, and the SDK clients.
 * The commands stay oclif commands described by oclif.manifest.json, so --help, topics and plugins work
 * as before. esbuild evaluates a module reached through require() or import() only when it is first
 * reached, so a command loads only what it uses.
 *
 * Left out: typescript, esbuild (it finds its own binary), native addons (ssh2's optional crypto binding,
 * cpu-features: required from node_modules by path), pg-native (optional, never installed).
 */
import {spawnSync} from 'node:child_process'
import {createRequire} from 'node:module'
import {mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {build, type Plugin} from 'esbuild'

import {LOADED_MARKS} from '../start-timing.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const outdir = path.join(root, 'dist/cli')
const outfile = path.join(outdir, 'feedops.cjs')

interface ManifestCommand {
  relativePath: string[]
}
const manifest = JSON.parse(readFileSync(path.join(root, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, ManifestCommand>}

/** dist/commands/shards/move.js → ./commands/shards/move.ts */
function sourceOf(cmd: ManifestCommand): string {
  const [dist, ...rest] = cmd.relativePath
  if (dist !== 'dist') throw new Error(`unexpected command path ${cmd.relativePath.join('/')}`)
  return './' + rest.join('/').replace(/\.js$/, '.ts')
}

const commandGetters = Object.entries(manifest.commands)
  .map(([id, cmd]) => `  ${JSON.stringify(id)}: {enumerable: true, get: () => require(${JSON.stringify(sourceOf(cmd))}).default},`)
  .join('\n')

const entry = `
// oclif checks the engines of its own package.json, which it looks for beside the bundle and does not find
// (the check then gives up): skip the look-up and loading semver for it. Our package.json's engines hold.
const engineWarning = process.env.OCLIF_DISABLE_ENGINE_WARNING
process.env.OCLIF_DISABLE_ENGINE_WARNING = '1'
const oclif = require('@oclif/core')
if (engineWarning === undefined) delete process.env.OCLIF_DISABLE_ENGINE_WARNING
else process.env.OCLIF_DISABLE_ENGINE_WARNING = engineWarning
// Commands come from COMMANDS below, already compiled: never look for TypeScript sources beside them.
oclif.settings.enableAutoTranspile = false
exports.COMMANDS = Object.defineProperties({}, {
${commandGetters}
})
exports.execute = oclif.execute
exports.prefetch = (loc) => require('./src/cli/prefetch.ts').prefetch(loc)
`

/**
 * Our sources as ESM have import.meta.url; in one CommonJS file they would lose it. Each file gets the URL
 * its tsc output has (dist/<path>.js), so every path computed from it (the lab's cloud server script, the
 * app's loader files, the project root) is what it is when run unbundled.
 */
const ownSources: Plugin = {
  name: 'own-sources',
  setup(b) {
    const own = new RegExp(`^${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/(src|commands|playbooks)/.*\\.ts$`)
    b.onLoad({filter: own}, (args) => {
      const rel = path.relative(root, args.path).replace(/\.ts$/, '.js')
      // Relative to the bundle (__dirname is dist/cli), so a moved checkout keeps working.
      // Through the banner's __feedopsRequire: a module may declare a `require` of its own (createRequire),
      // which would shadow the bundle's here and be read before it is set.
      const url = `__feedopsRequire('node:url').pathToFileURL(__feedopsRequire('node:path').join(__dirname, ${JSON.stringify(path.relative(outdir, path.join(root, 'dist', rel)))})).href`
      // `define` below makes import.meta.url this file's own constant (an AST rewrite: strings keep the words).
      let contents = `const __feedopsMetaUrl = ${url};\n${readFileSync(args.path, 'utf8')}`
      // The SDK as bundle-vendor.ts tree-shook it, inside this bundle: nothing to look for at run time.
      if (rel === 'src/inventory/ec2-sdk.js') contents = ec2SdkInBundle
      // esbuild stays a package of its own (it finds its binary beside it), and import() from the bundle's
      // vm.Script would print Node's "experimental" warning on stderr: require() it.
      contents = contents.replaceAll("await import('esbuild')", "require('esbuild') as typeof import('esbuild')")
      return {contents: contents + loadedMark(path.relative(root, args.path)), loader: 'ts'}
    })
  },
}

const ec2SdkInBundle = `export {EC2Client, paginateDescribeInstances} from ${JSON.stringify(path.join(root, 'dist/vendor/ec2-sdk.cjs'))}\n`

/** A line that records, when a module first runs, that a part named in LOADED_MARKS was loaded (start-timing.ts). */
function loadedMark(file: string): string {
  const mark = LOADED_MARKS.find((m) => m.test.test(file))
  return mark ? `\n;(globalThis[Symbol.for('feedops.loaded')] ??= new Set()).add(${JSON.stringify(mark.name)});\n` : ''
}

/**
 * `require.resolve(name)` run to see whether an optional package is installed: bundled, the package is in the
 * bundle already, and the probe only walks node_modules on every start (fdir's for picomatch: 40 ms).
 */
const PACKAGE_PROBES: [RegExp, string][] = [[/\brequire\.resolve\("picomatch"\);/, '']]

/**
 * Dependencies: Node built-ins loaded with import() become require() (no import() left to resolve at run
 * time), PACKAGE_PROBES go, and a loaded-mark is added as for our sources.
 */
const dependencies: Plugin = {
  name: 'dependencies',
  setup(b) {
    b.onLoad({filter: /(node_modules|dist\/vendor)\/.*\.[cm]?js$/}, (args) => {
      const file = path.relative(root, args.path)
      const mark = loadedMark(file)
      let source = readFileSync(args.path, 'utf8')
      const builtinImport = /\bimport\((["']node:[a-z_/]+["'])\)/g
      const hasBuiltinImport = builtinImport.test(source)
      const probes = PACKAGE_PROBES.filter(([re]) => re.test(source))
      if (!hasBuiltinImport && probes.length === 0 && mark === '') return undefined
      if (hasBuiltinImport) source = source.replace(builtinImport, 'Promise.resolve(require($1))')
      for (const [re, by] of probes) source = source.replace(re, by)
      return {contents: source + mark, loader: 'js'}
    })
  },
}

/**
 * Packages oclif requires when it loads but uses only for some command lines: tinyglobby (finding command
 * files, which the manifest and COMMANDS make unneeded) and ejs (help templates). Each is replaced by an
 * object whose properties load the package on first use, so `--version` never runs their initializers.
 */
const LAZY_PACKAGES = ['tinyglobby', 'ejs']
const lazyPackages: Plugin = {
  name: 'lazy-packages',
  setup(b) {
    const filter = new RegExp(`^(${LAZY_PACKAGES.join('|')})$`)
    b.onResolve({filter}, (args) => ({path: args.path, namespace: 'lazy-package', pluginData: {from: args.resolveDir}}))
    b.onLoad({filter: /.*/, namespace: 'lazy-package'}, (args) => {
      const req = createRequire(path.join((args.pluginData as {from: string}).from, 'x.js'))
      const real = req.resolve(args.path)
      const mod = req(args.path) as Record<string, unknown>
      const names = Object.keys(mod)
      return {
        contents: [
          `let real`,
          `const load = () => (real ??= require(${JSON.stringify(real)}))`,
          ...(mod.__esModule ? [`Object.defineProperty(exports, '__esModule', {value: true})`] : []),
          `for (const name of ${JSON.stringify(names)}) Object.defineProperty(exports, name, {enumerable: true, get: () => load()[name]})`,
        ].join('\n'),
        loader: 'js',
        resolveDir: path.dirname(real),
      }
    })
  },
}

/** Native addons stay files in node_modules, required by their path relative to the bundle. */
const nativeAddons: Plugin = {
  name: 'native-addons',
  setup(b) {
    b.onResolve({filter: /\.node$/}, (args) => {
      const abs = path.resolve(args.resolveDir, args.path)
      return {path: './' + path.relative(outdir, abs), external: true}
    })
  },
}

/**
 * esbuild writes ASCII (charset: ascii) except inside regular expression literals. One non-ASCII character
 * makes V8 hold the whole bundle as a two-byte string, decoded from UTF-8 on every start (about 20 ms for
 * this bundle); ASCII is read as Latin-1 straight into a one-byte string. A \\uXXXX escape means the same
 * character in a regular expression, a string or a template.
 */
function asciiOnly(file: string): void {
  const text = readFileSync(file, 'utf8')
  const escaped = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  if (escaped !== text) writeFileSync(file, escaped)
}

rmSync(outdir, {recursive: true, force: true})
mkdirSync(outdir, {recursive: true})
const result = await build({
  stdin: {contents: entry, resolveDir: root, sourcefile: 'feedops-cli-entry.js', loader: 'js'},
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // The SDK's ES module builds tree-shake better than its CommonJS ones.
  mainFields: ['module', 'main'],
  // typescript: oclif reads tsconfig.json with it only to run TypeScript sources, which a bundle never does.
  external: ['esbuild', 'pg-native', 'typescript'],
  define: {'import.meta.url': '__feedopsMetaUrl'},
  banner: {js: 'var __feedopsRequire = require;'},
  minify: true,
  // Class and function names stay: oclif and our errors print them, and --debug stack traces read better.
  keepNames: true,
  legalComments: 'linked',
  sourcemap: 'linked',
  outfile,
  plugins: [ownSources, dependencies, nativeAddons, lazyPackages],
  logLevel: 'warning',
  metafile: true,
})
writeFileSync(path.join(outdir, 'meta.json'), JSON.stringify(result.metafile))
asciiOnly(outfile)
const packageImport = /\bimport\("(?![./]|node:)([^"]+)"\)/.exec(readFileSync(outfile, 'latin1'))
if (packageImport) throw new Error(`the CLI bundle imports ${packageImport[1]} with import(); require() it (see ownSources)`)

// The base code cache, made by this Node from a --help run (src/cli/cli-loader.ts); each command adds its own.
const made = spawnSync(process.execPath, [path.join(root, 'bin/run.js'), '--help'], {env: {...process.env, FEEDOPS_CLI_CACHE_BUILD: 'base'}, encoding: 'utf8'})
if (made.status !== 0) throw new Error(`the CLI bundle did not run to make its code cache (exit ${made.status}): ${made.stderr}`)
const caches = readdirSync(outdir).filter((f) => f.endsWith('.jsc'))
if (caches.length !== 1) throw new Error(`expected the base code cache in ${outdir}, found ${caches.join(', ') || 'none'}`)
const kb = (f: string) => Math.round(readFileSync(path.join(outdir, f)).length / 1024)
console.log(`Bundled dist/cli/feedops.cjs (${kb('feedops.cjs')} KiB) and its base code cache ${caches[0]} (${kb(caches[0]!)} KiB)`)
