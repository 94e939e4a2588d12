#!/usr/bin/env node
// Starts from the one-file bundle `npm run build` makes, with its V8 code cache (see src/cli/cli-loader.ts).
import {fileURLToPath} from 'node:url'

import {startCli} from '../dist/src/cli/cli-loader.js'

await startCli(fileURLToPath(new URL('..', import.meta.url)))
