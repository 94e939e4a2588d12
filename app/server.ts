import http, {STATUS_CODES} from 'node:http'
import type {AddressInfo} from 'node:net'
import type {Duplex} from 'node:stream'
import {setTimeout as sleep} from 'node:timers/promises'

import type {FeedApp} from './app.js'
import type {Logger} from './logger.js'

/** An HTTP server for the app on host:port (port 0 picks a free one). */
export async function listen(app: FeedApp, host: string, port: number): Promise<{server: http.Server; port: number}> {
  const server = http.createServer(app.callback())
  // Longer than a load balancer's idle timeout (ELB: 60 s), so the balancer, not the app, closes idle connections.
  server.keepAliveTimeout = 65_000
  server.headersTimeout = 66_000
  server.on('clientError', answerClientError)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return {server, port: (server.address() as AddressInfo).port}
}

/**
 * What Node's HTTP parser refuses before the app sees a request (headers or URL over its limit, a malformed
 * request line) is answered in the app's JSON error shape, as Node's default handler would with a bare status.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const [status, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, `the request line and headers are larger than the server accepts (${http.maxHeaderSize} bytes)`]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'the request was not received in time']
        : [400, 'the request is not valid HTTP']
  const body = JSON.stringify({error: {message}})
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
}

/**
 * SIGTERM handling: readyz turns 503 at once; after drainDelayMs (time for the balancer to notice) the
 * server stops accepting, in-flight requests finish (their keep-alive connections close after the response),
 * then `close` releases pools and clients. Gives up after timeoutMs.
 */
export async function drainAndClose(opts: {
  app: FeedApp
  server: http.Server
  logger: Logger
  drainDelayMs: number
  timeoutMs: number
  close: () => Promise<void>
}): Promise<'stopped' | 'timeout'> {
  const {app, server, logger} = opts
  app.lifecycle.draining = true
  logger.info({drainDelayMs: opts.drainDelayMs}, 'draining')
  if (opts.drainDelayMs > 0) await sleep(opts.drainDelayMs)
  const closed = new Promise<void>((resolve) => {
    server.close(() => resolve())
    server.closeIdleConnections()
  }).then(async () => {
    // Connections are gone, but a handler whose client hung up may still be running.
    while (app.lifecycle.inFlight > 0) await sleep(20)
    return 'stopped' as const
  })
  const timer = sleep(opts.timeoutMs, 'timeout' as const, {ref: false})
  const outcome = await Promise.race([closed, timer])
  if (outcome === 'timeout') {
    logger.error({timeoutMs: opts.timeoutMs}, 'in-flight requests did not finish in time')
    server.closeAllConnections()
  }
  await opts.close()
  logger.info('stopped')
  return outcome
}
