/**
 * Writes oclif.manifest.json at the package root from the built commands (run by `npm run build`).
 * With a manifest oclif imports only the command being run; without one it imports every command
 * (and so pg, koa, the AWS SDK…) on each start, which costs a few hundred ms per invocation.
 */
import {writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {Plugin} from '@oclif/core'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const plugin = new Plugin({root, isRoot: true, ignoreManifest: true, errorOnManifestCreate: true})
await plugin.load()
const file = path.join(root, 'oclif.manifest.json')
writeFileSync(file, JSON.stringify(plugin.manifest, null, 2) + '\n')
console.log(`Wrote ${path.relative(process.cwd(), file) || file}: ${Object.keys(plugin.manifest.commands).length} commands`)
