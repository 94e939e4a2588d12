/**
 * Closed-loop HTTP load from its own process (autocannon): `--connections` connections for `--duration`
 * seconds, each request to the next path of `--paths` (comma-separated) in turn. Prints autocannon's
 * result as JSON on stdout. Used by the feed bench to read many different feeds at once.
 *
 *   node dist/test/bench/load.js --url http://127.0.0.1:8080 --paths /feed/7,/feed/8 --connections 64 --duration 15
 */
import {parseArgs} from 'node:util'

import autocannon from 'autocannon'

const {values} = parseArgs({
  options: {
    url: {type: 'string'},
    paths: {type: 'string'},
    connections: {type: 'string', default: '64'},
    duration: {type: 'string', default: '15'},
  },
})
if (!values.url || !values.paths) throw new Error('--url and --paths are required')
const paths = values.paths.split(',')
let next = 0
const result = await autocannon({
  url: values.url,
  connections: Number(values.connections),
  duration: Number(values.duration),
  requests: [{setupRequest: (req) => ({...req, path: paths[next++ % paths.length]!})}],
})
process.stdout.write(JSON.stringify(result))
