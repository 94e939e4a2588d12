#!/usr/bin/env node
// The compile cache must be in place before oclif and the commands are loaded (see compile-cache.ts).
import {installCompileCache} from '../dist/src/cli/compile-cache.js'

installCompileCache()
const {execute} = await import('@oclif/core')
await execute({dir: import.meta.url})
