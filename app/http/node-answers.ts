import http, {STATUS_CODES, type IncomingMessage, type ServerResponse} from 'node:http'
import type {Duplex} from 'node:stream'

import type {Logger} from '../logger.js'
import {closeLingering} from './lingering-close.js'

/**
 * What Node's HTTP server answers by itself, before any request reaches the app, answered instead in the
 * app's JSON error shape `{"error": {"message": …}}` and logged as a client error (info, never error):
 * - clientError: what the parser refuses (a request line and headers over the limit: 431; a method it does not
 *   know, or anything that is not HTTP: 400; a request not received in time: 408);
 * - checkExpectation: an `Expect` other than 100-continue (417);
 * - connect: CONNECT, which Node hands to a proxy and otherwise closes without a word (400: this is no proxy).
 * The missing Host of an HTTP/1.1 request is the app's own check (middleware/require-host.ts).
 */

const JSON_TYPE = 'application/json; charset=utf-8'
const errorJson = (message: string): string => JSON.stringify({error: {message}})

/** A whole response written to a socket that has no response object (clientError, connect), then the close. */
function answerOnSocket(socket: Duplex, status: number, message: string): void {
  const body = errorJson(message)
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${JSON_TYPE}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
}

function parseError(err: NodeJS.ErrnoException): [number, string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, `the request line and headers are larger than the server accepts (${http.maxHeaderSize} bytes)`]
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, 'the chunk extensions of the request body are larger than the server accepts']
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'the request was not received in time']
    case 'HPE_INVALID_METHOD':
      return [400, 'the request method is not one this server knows']
    default:
      return [400, 'the request is not valid HTTP']
  }
}

export function onClientError(logger: Logger) {
  return function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    // As Node's own handler: never write into a response that has begun (the client would read a corrupt one).
    const response = (socket as {_httpMessage?: {headersSent?: boolean}})._httpMessage
    if (err.code === 'ECONNRESET' || !socket.writable || response?.headersSent) {
      socket.destroy()
      return
    }
    const [status, message] = parseError(err)
    logger.info({status, code: err.code}, 'client error')
    answerOnSocket(socket, status, message)
  }
}

export function onCheckExpectation(logger: Logger) {
  return function answerExpectation(req: IncomingMessage, res: ServerResponse): void {
    logger.info({status: 417, method: req.method}, 'client error')
    const body = errorJson('the only expectation this server meets is Expect: 100-continue')
    res.writeHead(417, {'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body), Connection: 'close'})
    // A client that does not wait for an answer to its Expect is sending its body already.
    closeLingering(req)
    res.end(body)
  }
}

export function onConnect(logger: Logger) {
  return function answerConnect(_req: IncomingMessage, socket: Duplex): void {
    logger.info({status: 400, method: 'CONNECT'}, 'client error')
    if (socket.writable) answerOnSocket(socket, 400, 'CONNECT is not served here: this server is not a proxy')
    else socket.destroy()
  }
}
