import {randomUUID} from 'node:crypto'
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'

import {readCloudFile, type CloudFile} from './cloud-file.js'
import {CloudApiError} from './errors.js'
import {FaultInjector} from './faults.js'
import {finishDrains} from './lb-plane.js'
import {parseQueryParams, type QueryParams} from './query-params.js'
import type {CloudService} from './service.js'
import {appendRequestLog} from './request-log.js'
import {cloudServices} from './services.js'

/**
 * The lab's stand-in for the AWS query APIs: a node:http server that answers AWS SDK clients
 * pointed at it with `endpoint`. Requests must be SigV4-signed (the signature is not checked);
 * cloud.json is re-read on every request. Each answer is also a line of <dir>/cloud-requests.jsonl.
 * While a load balancer's member drains, a timer finishes its deregistration (lb-plane.ts).
 */

export interface CloudEndpointOptions {
  /** Lab dir holding cloud.json. */
  dir: string
  /** Where to listen; default cloud.json's `listen`. Tests pass {host: '127.0.0.1', port: 0}. */
  listen?: {host: string; port: number}
  /** One line per request; default stderr. */
  log?: (line: string) => void
  services?: readonly CloudService[]
}

export interface CloudEndpoint {
  /** http://host:port */
  url: string
  host: string
  port: number
  /** Stops listening and drops open connections; safe to call twice. */
  close(): Promise<void>
}

const maxBodyBytes = 1024 * 1024

export async function startCloudEndpoint(opts: CloudEndpointOptions): Promise<CloudEndpoint> {
  const log = opts.log ?? ((line: string) => void process.stderr.write(`${line}\n`))
  const services = opts.services ?? cloudServices
  const listen = opts.listen ?? (await readCloudFile(opts.dir)).listen
  const faults = new FaultInjector()
  const server = createServer((req, res) => {
    handle(req, res, opts.dir, services, log, faults).catch((err: unknown) => {
      log(`${new Date().toISOString()} internal error: ${(err as Error).stack ?? String(err)}`)
      if (!res.headersSent) res.writeHead(500)
      res.end()
    })
  })
  server.keepAliveTimeout = 5000
  await listenOn(server, listen.host, listen.port)
  const port = (server.address() as AddressInfo).port
  const drains = drainTimer(opts.dir, log)
  let closing: Promise<void> | undefined
  return {
    url: `http://${listen.host}:${port}`,
    host: listen.host,
    port,
    close: () =>
      (closing ??= new Promise<void>((resolve, reject) => {
        clearInterval(drains)
        server.close((err) => (err ? reject(err) : resolve()))
        server.closeAllConnections()
      })),
  }
}

/** Finishes draining members a few times a second (nothing to do is one small file read). */
function drainTimer(dir: string, log: (line: string) => void): NodeJS.Timeout {
  let busy = false
  const timer = setInterval(() => {
    if (busy) return
    busy = true
    finishDrains(dir, () => readCloudFile(dir))
      .catch((err: unknown) => log(`${new Date().toISOString()} drain: ${(err as Error).message}`))
      .finally(() => (busy = false))
  }, 200)
  timer.unref()
  return timer
}

function listenOn(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  dir: string,
  services: readonly CloudService[],
  log: (line: string) => void,
  faults: FaultInjector,
): Promise<void> {
  const started = Date.now()
  const requestId = randomUUID()
  const url = new URL(req.url ?? '/', 'http://endpoint')
  const scope = signingScope(req.headers.authorization, url.searchParams)
  let params: QueryParams = new Map()
  let service = pickService(services, scope?.service, url.searchParams.get('Version') ?? undefined)
  let status = 200
  let errorCode: string | undefined
  let body: string
  try {
    if (req.method !== 'POST' && req.method !== 'GET') {
      throw new CloudApiError('UnsupportedHttpVerb', `The HTTP verb ${req.method} is not supported; use POST or GET.`, 405)
    }
    params = parseQueryParams(url.search, req.method === 'POST' ? await readBody(req) : '')
    service = pickService(services, scope?.service, params.get('Version'))
    if (!req.headers.authorization && !url.searchParams.has('X-Amz-Signature')) {
      throw new CloudApiError('MissingAuthenticationToken', 'Request is missing Authentication Token', 401)
    }
    if (!scope) throw new CloudApiError('IncompleteSignature', 'The request signature does not conform to AWS standards (SigV4 expected).')
    const action = params.get('Action')
    if (!action) throw new CloudApiError('MissingAction', 'The request must contain the parameter Action.')
    const handler = Object.hasOwn(service.actions, action) ? service.actions[action] : undefined
    if (!handler) throw new CloudApiError('InvalidAction', `The action ${action} is not valid for this web service.`)
    let cloud: CloudFile
    try {
      cloud = await readCloudFile(dir)
    } catch (err) {
      throw new CloudApiError('InternalError', `The lab endpoint could not read its state: ${(err as Error).message}`, 500)
    }
    await faults.apply(cloud, service.signingName, action)
    body = await handler({action, params, cloud, dir, region: scope.region, requestId})
  } catch (err) {
    if (!(err instanceof CloudApiError)) throw err
    status = err.status
    errorCode = err.code
    body = service.errorXml(err, requestId)
  }
  res.writeHead(status, {
    'content-type': 'text/xml;charset=UTF-8',
    'content-length': Buffer.byteLength(body),
    'x-amzn-requestid': requestId,
  })
  res.end(body)
  const action = params.get('Action') ?? '-'
  appendRequestLog(dir, {
    time: new Date(started).toISOString(),
    service: service.signingName,
    version: params.get('Version') ?? '',
    action,
    status,
    ...(errorCode ? {code: errorCode} : {}),
    ms: Date.now() - started,
  })
  log(
    `${new Date().toISOString()} ${req.socket.remoteAddress ?? '-'} ${req.method} ${service.signingName} ${action} ${status}` +
      `${errorCode ? ` ${errorCode}` : ''} ${Date.now() - started}ms` +
      (scope ? ` key=${scope.accessKeyId} region=${scope.region}` : ' unsigned'),
  )
}

/** By signing name, then (Classic ELB and ELBv2 share one) by Version; unsigned, by Version alone. */
function pickService(services: readonly CloudService[], signingName?: string, version?: string): CloudService {
  const signed = services.filter((s) => s.signingName === signingName)
  return (
    signed.find((s) => s.version === version) ?? signed[0] ?? services.find((s) => s.version === version) ?? services[0]!
  )
}

/** Region and service from a SigV4 `Credential=AKID/DATE/REGION/SERVICE/aws4_request` (header or presigned query). */
function signingScope(
  authorization: string | undefined,
  query: URLSearchParams,
): {accessKeyId: string; region: string; service: string} | undefined {
  const credential = authorization?.startsWith('AWS4-HMAC-SHA256 ')
    ? /Credential=([^,\s]+)/.exec(authorization)?.[1]
    : query.get('X-Amz-Algorithm') === 'AWS4-HMAC-SHA256'
      ? (query.get('X-Amz-Credential') ?? undefined)
      : undefined
  const parts = credential?.split('/')
  if (!parts || parts.length < 5 || parts.at(-1) !== 'aws4_request') return undefined
  return {accessKeyId: parts.slice(0, -4).join('/'), region: parts.at(-3)!, service: parts.at(-2)!}
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > maxBodyBytes) throw new CloudApiError('RequestEntityTooLarge', 'The request body is larger than 1 MiB.', 413)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
