import {createRequire} from 'node:module'

/**
 * The two parts of the EC2 SDK the inventory uses, loaded when ec2.ts first imports this module.
 *
 * In the CLI's bundle (src/build/bundle-cli.ts) this module is replaced by a plain re-export from
 * @aws-sdk/client-ec2, tree-shaken and compiled with the rest. Run unbundled (bin/dev.js, the tests that
 * import src/), it is the SDK as `npm run build` bundles it (dist/vendor/ec2-sdk.cjs, see
 * src/build/bundle-vendor.ts), or the installed package when running from the sources, where there is no
 * bundle; with require(): the package is 2 MB of CommonJS, and import() would first scan it for ESM syntax
 * and export names, which costs more than loading it.
 */
const require = createRequire(import.meta.url)

function load(): typeof import('@aws-sdk/client-ec2') {
  try {
    return require('../../vendor/ec2-sdk.cjs') as typeof import('@aws-sdk/client-ec2')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err
    return require('@aws-sdk/client-ec2') as typeof import('@aws-sdk/client-ec2')
  }
}

const sdk = load()
export const EC2Client = sdk.EC2Client
export const paginateDescribeInstances = sdk.paginateDescribeInstances
