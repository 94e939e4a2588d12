/**
 * The lab's cloud endpoint as a long-lived process:
 *   node dist/src/lab/cloud/server.js --dir <labdir>
 * Listens on <labdir>/cloud.json's `listen`, logs one line per request to stderr, exits 0 on
 * SIGTERM/SIGINT. The work is done by startCloudEndpoint (endpoint.ts), which tests call in-process.
 */
import {parseArgs} from 'node:util'

import {startCloudEndpoint} from './endpoint.js'

async function main(): Promise<void> {
  const {values} = parseArgs({options: {dir: {type: 'string'}}, strict: true})
  if (!values.dir) {
    process.stderr.write('usage: server.js --dir <labdir>   (serves <labdir>/cloud.json)\n')
    process.exit(2)
  }
  const endpoint = await startCloudEndpoint({dir: values.dir})
  process.stderr.write(`${new Date().toISOString()} cloud endpoint listening on ${endpoint.url} (pid ${process.pid})\n`)
  const stop = (signal: string) => {
    process.stderr.write(`${new Date().toISOString()} ${signal}: stopping\n`)
    endpoint.close().then(
      () => process.exit(0),
      () => process.exit(0),
    )
  }
  process.once('SIGTERM', () => stop('SIGTERM'))
  process.once('SIGINT', () => stop('SIGINT'))
}

main().catch((err: unknown) => {
  process.stderr.write(`cloud endpoint failed to start: ${(err as Error).message}\n`)
  process.exit(1)
})
