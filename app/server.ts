import http from 'node:http'
import net, {type AddressInfo, type Socket} from 'node:net'
import {setTimeout as sleep} from 'node:timers/promises'

import type {FeedApp} from './app.js'
import {onCheckExpectation, onClientError, onConnect} from './http/node-answers.js'
import type {Logger} from './logger.js'

/**
 * The connections an HTTP server has open, and whether each has served a request yet: what a graceful stop
 * needs to tell a kept-alive connection resting between requests (safe to close: a balancer retries a read
 * sent on it) from a new one whose first request may already be on its way (closing it would reset a write
 * the balancer counts as sent, and must not resend).
 */
export class Connections {
  /** `since`: when the connection was accepted, then when its last response ended. */
  private readonly open = new Map<Socket, {active: number; served: number; since: number}>()

  constructor(server: http.Server) {
    server.on('connection', (socket: Socket) => {
      this.open.set(socket, {active: 0, served: 0, since: Date.now()})
      socket.once('close', () => this.open.delete(socket))
    })
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const state = this.open.get(req.socket)
      if (!state) return
      state.active++
      res.once('close', () => {
        state.active--
        state.served++
        state.since = Date.now()
      })
    })
  }

  get size(): number {
    return this.open.size
  }

  /**
   * Ends kept-alive connections idle for `keptMs` (a balancer reuses its busiest connections first, so these
   * are the ones it is least likely to be sending on) and new ones that sent nothing for `newMs`; the rest
   * end after their next response (the app says Connection: close while draining).
   */
  endIdle(keptMs: number, newMs: number): void {
    const now = Date.now()
    for (const [socket, s] of this.open) {
      if (s.active === 0 && now - s.since >= (s.served > 0 ? keptMs : newMs)) socket.end()
    }
  }
}

/**
 * Stops listening at once (a connect is refused, which NGINX retries on the next app host, writes included)
 * and ends idle kept-alive connections, but leaves connections just accepted: unlike `http.Server.close`,
 * which closes every idle connection, including one whose first request has arrived and not been read yet.
 * Resolves once every connection has closed; each ends after its response (the app says Connection: close).
 */
export async function closeGracefully(server: http.Server, connections: Connections): Promise<void> {
  const stopped = new Promise<void>((resolve) => net.Server.prototype.close.call(server, () => resolve()))
  while (connections.size > 0) {
    connections.endIdle(250, 1000)
    await sleep(20)
  }
  await stopped
}

/** A listening socket passed by systemd socket activation (sd_listen_fds(3): fd 3, meant for this process). */
function activatedSocket(): {fd: number} | undefined {
  return process.env.LISTEN_FDS === '1' && Number(process.env.LISTEN_PID) === process.pid ? {fd: 3} : undefined
}

/** The app's exit code when its address is taken by a process that does not share it (no SO_REUSEPORT). */
export const ADDRESS_IN_USE_EXIT = 98

/**
 * An HTTP server for the app on host:port (port 0 picks a free one), or on the socket systemd passed (the
 * feed.socket unit of src/deploy/systemd.ts). Without systemd the port is opened with SO_REUSEPORT
 * (Node 22.12 and later), so a restart starts the new process beside the old one and stops the old one once
 * the new one listens: the port never closes, and with net.ipv4.tcp_migrate_req = 1 the connections waiting
 * in the old process's accept queue move to the new one instead of being reset.
 */
export async function listen(app: FeedApp, host: string, port: number): Promise<{server: http.Server; port: number; connections: Connections}> {
  const {requestTimeoutMs} = app.http
  const server = http.createServer(
    {
      // A request must arrive whole, head and body, within app.requestTimeoutMs; a 408 after that (a body shorter
      // than its Content-Length would hold its connection and its handler until then). Node checks every so often.
      requestTimeout: requestTimeoutMs,
      headersTimeout: Math.min(66_000, requestTimeoutMs),
      connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(requestTimeoutMs / 4))),
      // Node's own check answers a bare 400; the app answers it in its JSON shape (http/middleware/require-host.ts).
      requireHostHeader: false,
    },
    app.callback(),
  )
  const connections = new Connections(server)
  // Longer than a load balancer's idle timeout (ELB: 60 s), so the balancer, not the app, closes idle connections.
  server.keepAliveTimeout = 65_000
  // Node's own answers, in the app's JSON error shape (http/node-answers.ts).
  server.on('clientError', onClientError(app.logger))
  server.on('checkExpectation', onCheckExpectation(app.logger))
  server.on('connect', onConnect(app.logger))
  // Expect: 100-continue: a body the app refuses by its declared length (413) is never asked for. Emitted as a
  // request, so Connections sees it as one.
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!(Number(req.headers['content-length']) > app.http.bodyLimitBytes)) res.writeContinue()
    server.emit('request', req, res)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(activatedSocket() ?? {port, host, reusePort: true}, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return {server, port: (server.address() as AddressInfo).port, connections}
}

/**
 * SIGTERM handling: readyz turns 503 at once; after drainDelayMs (time for a balancer that polls readyz to
 * notice; NGINX needs none, it retries a refused connect) the server stops accepting, in-flight requests
 * finish (their connections close after the response), then `close` releases pools and clients. Gives up
 * after timeoutMs.
 */
export async function drainAndClose(opts: {
  app: FeedApp
  server: http.Server
  connections: Connections
  logger: Logger
  drainDelayMs: number
  timeoutMs: number
  close: () => Promise<void>
}): Promise<'stopped' | 'timeout'> {
  const {app, server, logger} = opts
  app.lifecycle.draining = true
  logger.info({drainDelayMs: opts.drainDelayMs}, 'draining')
  if (opts.drainDelayMs > 0) await sleep(opts.drainDelayMs)
  const closed = closeGracefully(server, opts.connections).then(async () => {
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
