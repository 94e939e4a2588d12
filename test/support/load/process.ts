/**
 * A load through the NGINX nodes (for the deploy bench and the deploy test), in a process of its own:
 * closed-loop autocannon connections spread over the NGINX nodes, each request a feed read or (a `--writes` share) a write: a like of a new (user, photo) pair or a new
 * photo with a unique caption. Every acknowledged write (2xx) is recorded, so the bench can count afterwards in
 * Postgres that each was applied exactly once. Runs until SIGTERM (or `--max-seconds`), then prints one JSON
 * object (LoadResult) on stdout.
 *
 *   node dist/test/support/load/process.js --plan plan.json --connections 32 --max-seconds 120
 */
import {readFileSync} from 'node:fs'
import {parseArgs} from 'node:util'

import autocannon from 'autocannon'

/** What the bench prepared before the load: users (with tokens), photos to like, and where to send. */
export interface LoadPlan {
  urls: string[]
  /** Unique per run; every new photo's caption is `${tag}-n${k}`. */
  tag: string
  users: {id: string; token: string}[]
  /** Photos that exist before the load; likes go to (user, photo) pairs never liked before. */
  photos: string[]
}

export interface LoadResult {
  seconds: number
  requests: number
  /** By status code, every response. */
  statusCodes: Record<string, number>
  non2xx: number
  /** Connection errors (refused, reset, closed mid-response) and timeouts, as autocannon counts them. */
  socketErrors: number
  timeouts: number
  reads: number
  /** Acknowledged writes. */
  ackedLikes: {photoId: string; userId: string}[]
  ackedPhotos: {id: string; caption: string}[]
  /** Writes sent and not acknowledged (a non-2xx or no answer): they may or may not have been applied. */
  unackedWrites: number
  /** Non-2xx answers and socket errors, with the time since the start, for the report (first 50). */
  failures: {ms: number; what: string}[]
}

type Op = {kind: 'read'} | {kind: 'like'; photoId: string; userId: string} | {kind: 'photo'; caption: string}

const {values} = parseArgs({
  options: {
    plan: {type: 'string'},
    connections: {type: 'string', default: '32'},
    writes: {type: 'string', default: '0.2'},
    'max-seconds': {type: 'string', default: '120'},
  },
})
if (!values.plan) throw new Error('--plan is required')
const plan = JSON.parse(readFileSync(values.plan, 'utf8')) as LoadPlan
const connections = Number(values.connections)
const writeShare = Number(values.writes)

const started = performance.now()
const result: LoadResult = {
  seconds: 0,
  requests: 0,
  statusCodes: {},
  non2xx: 0,
  socketErrors: 0,
  timeouts: 0,
  reads: 0,
  ackedLikes: [],
  ackedPhotos: [],
  unackedWrites: 0,
  failures: [],
}
const failure = (what: string) => {
  if (result.failures.length < 50) result.failures.push({ms: Math.round(performance.now() - started), what})
}

// A deterministic sequence of operations shared by every connection: reads cycle over the users' feeds,
// like k goes to the k-th (user, photo) pair, photo k gets caption `${tag}-n${k}`.
let seq = 0
let likes = 0
let photos = 0
function nextOp(): Op {
  const n = seq++
  // Spread the writes evenly: n * share crosses an integer on exactly `share` of the requests.
  const isWrite = Math.floor((n + 1) * writeShare) > Math.floor(n * writeShare)
  if (!isWrite) return {kind: 'read'}
  if (likes <= photos) {
    const k = likes++ % (plan.users.length * plan.photos.length)
    return {kind: 'like', userId: plan.users[k % plan.users.length]!.id, photoId: plan.photos[Math.floor(k / plan.users.length)]!}
  }
  return {kind: 'photo', caption: `${plan.tag}-n${photos++}`}
}

const tokenOf = new Map(plan.users.map((u) => [u.id, u.token]))

interface Context {
  op?: Op
}

function request(req: autocannon.Request, context: Context): autocannon.Request {
  // A request whose connection failed never reaches response(): its op is still here when the next is set up.
  if (context.op && context.op.kind !== 'read') result.unackedWrites++
  const op = nextOp()
  context.op = op
  const user = plan.users[seq % plan.users.length]!
  switch (op.kind) {
    case 'read':
      return {...req, method: 'GET', path: `/feed/${user.id}?limit=20`, headers: {}, body: undefined}
    case 'like':
      return {...req, method: 'PUT', path: `/photos/${op.photoId}/likes`, headers: {authorization: `Bearer ${tokenOf.get(op.userId)}`}, body: undefined}
    case 'photo':
      return {
        ...req,
        method: 'POST',
        path: '/photos',
        headers: {authorization: `Bearer ${user.token}`, 'content-type': 'application/json'},
        body: JSON.stringify({caption: op.caption, s3Key: `bench/${op.caption}.jpg`}),
      }
  }
}

function response(status: number, body: string, context: Context): void {
  const op = context.op
  context.op = undefined
  if (!op) return
  const ok = status >= 200 && status < 300
  // nginx's error pages are HTML: keep their text only.
  if (!ok) failure(`${status} on ${op.kind}: ${body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 160)}`)
  if (op.kind === 'read') result.reads++
  else if (!ok) result.unackedWrites++
  else if (op.kind === 'like') result.ackedLikes.push({photoId: op.photoId, userId: op.userId})
  else result.ackedPhotos.push({id: (JSON.parse(body) as {photo: {id: string}}).photo.id, caption: op.caption})
}

// One autocannon instance per NGINX node, the connections split between them.
const done: Promise<autocannon.Result>[] = []
const instances = plan.urls.map((url, i) => {
  let finished!: (r: autocannon.Result) => void
  done.push(new Promise((resolve) => (finished = resolve)))
  const instance = autocannon({
    url,
    connections: Math.floor(connections / plan.urls.length) + (i < connections % plan.urls.length ? 1 : 0),
    duration: Number(values['max-seconds']),
    timeout: 10,
    requests: [
      {
        setupRequest: (req, context) => request(req, context as Context),
        onResponse: (status, body, context) => response(status, body, context as Context),
      },
    ],
  }, (err, r) => {
    if (err) throw err
    finished(r)
  })
  instance.on('reqError', (err: Error) => {
    failure(`socket error on ${url}: ${err.message}`)
  })
  return instance
})
process.once('SIGTERM', () => {
  for (const instance of instances) instance.stop()
})

const results = await Promise.all(done)
result.seconds = (performance.now() - started) / 1000
for (const r of results) {
  result.requests += r.requests.total
  result.non2xx += r.non2xx
  result.socketErrors += r.errors
  result.timeouts += r.timeouts
  for (const [code, {count}] of Object.entries(r.statusCodeStats ?? {})) result.statusCodes[code] = (result.statusCodes[code] ?? 0) + (count ?? 0)
}
process.stdout.write(JSON.stringify(result))
