#!/usr/bin/env -S node --import tsx
// Runs the TypeScript sources directly (no build step); oclif maps dist/commands back to commands/.
// The built oclif.manifest.json is ignored here: it may predate the sources being edited.
import {execute, Plugin} from '@oclif/core'

import {reportStartTimingAtExit, startTimingWanted} from '../src/start-timing.js'

if (startTimingWanted(process.argv.slice(2), process.env)) reportStartTimingAtExit('development')

const root = new URL('..', import.meta.url).pathname
const plugin = new Plugin({root, isRoot: true, ignoreManifest: true})
await plugin.load()
await execute({development: true, loadOptions: {root, plugins: new Map([[plugin.name, plugin]])}})
