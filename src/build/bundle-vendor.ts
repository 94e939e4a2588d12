/**
 * Bundles the parts of the AWS SDK the CLI uses into dist/vendor/*.cjs (run by `npm run build`).
 *
 * Why: @aws-sdk/client-ec2 is 2 MB of CommonJS spread over hundreds of files, and loading it was the
 * largest single cost of `feedops run` against an EC2 inventory (about 0.45 s of CPU on a lab
 * machine, before any SSH connection starts). One tree-shaken file with only EC2Client and
 * DescribeInstances loads in half that, and with the compile cache (src/cli/compile-cache.ts) in a fifth. It is
 * the same SDK code, built from the installed package; the tests run through it.
 */
import {mkdirSync, readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {build, type Plugin} from 'esbuild'

import {ELB_CLASSIC_EXPORTS, ELB_V2_EXPORTS} from '../lb/sdk-exports.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const outdir = path.join(root, 'dist/vendor')
mkdirSync(outdir, {recursive: true})

/**
 * The SDK loads a few Node built-ins with import(); as CommonJS they can be require()d, and a module
 * without import() can use the compile cache (src/cli/compile-cache.ts explains why).
 */
const builtinImportsToRequire: Plugin = {
  name: 'builtin-imports-to-require',
  setup(b) {
    b.onLoad({filter: /node_modules\/.*\.m?js$/}, (args) => {
      const source = readFileSync(args.path, 'utf8')
      const builtinImport = /\bimport\((["']node:[a-z_/]+["'])\)/g
      if (!builtinImport.test(source)) return undefined
      return {contents: source.replace(builtinImport, 'Promise.resolve(require($1))'), loader: 'js'}
    })
  },
}

/** One SDK entry bundled to dist/vendor/<name>, tree-shaken to what `contents` exports. */
async function bundleSdk(name: string, contents: string): Promise<void> {
  await build({
    stdin: {contents, resolveDir: root, sourcefile: `${name}-entry.js`},
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    mainFields: ['module', 'main'],
    minify: true,
    legalComments: 'linked',
    outfile: path.join(outdir, `${name}.cjs`),
    plugins: [builtinImportsToRequire],
    logLevel: 'warning',
  })
  console.log(`Bundled dist/vendor/${name}.cjs`)
}

await bundleSdk('ec2-sdk', "export {EC2Client, paginateDescribeInstances} from '@aws-sdk/client-ec2'")

// The two ELB clients `feedops lb` uses (src/lb/sdk.ts): one file, their shared SDK core once.
await bundleSdk(
  'elb-sdk',
  [
    `import {${ELB_CLASSIC_EXPORTS.join(', ')}} from '@aws-sdk/client-elastic-load-balancing'`,
    `import {${ELB_V2_EXPORTS.join(', ')}} from '@aws-sdk/client-elastic-load-balancing-v2'`,
    `export const classic = {${ELB_CLASSIC_EXPORTS.join(', ')}}`,
    `export const elbv2 = {${ELB_V2_EXPORTS.join(', ')}}`,
  ].join('\n'),
)
