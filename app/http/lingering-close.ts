import type {IncomingMessage} from 'node:http'
import {Socket} from 'node:net'

/** How long, and how much, a closing connection goes on reading what its client still sends. */
export interface LingerBounds {
  maxMs: number
  maxBytes: number
}

export const LINGER: LingerBounds = {maxMs: 1000, maxBytes: 1024 * 1024}

const lingering = new WeakSet<Socket>()

/**
 * Closes the connection after the response being sent, without losing that response to a client still sending
 * its body. A socket closed with unread bytes in its receive queue makes the kernel send a reset, and a client
 * that is still writing then sees EPIPE or ECONNRESET instead of the answer (a 413 to a 10 MiB upload; NGINX
 * turns it into a 502). So, as NGINX's lingering_close does: the response goes out with Connection: close
 * (set by the caller), the write side is shut after it (FIN), and what the client still sends is read and
 * dropped until its body ends, for at most `maxMs`; then the socket is closed. Past `maxBytes` nothing more is
 * read: TCP's flow control then holds the client's writes, and the client, blocked, still reads the answer
 * (closing at once would reset it, as above) until `maxMs` has passed.
 *
 * Node's HTTP server closes a connection whose response said Connection: close by calling the socket's
 * destroySoon() once that response is written (in Node 20 and 24 alike); this socket's destroySoon does the
 * above instead. A request whose body was read to its end needs none of it.
 */
export function closeLingering(req: IncomingMessage, bounds: LingerBounds = LINGER): void {
  const socket = req.socket
  if (req.complete || lingering.has(socket)) return
  lingering.add(socket)
  let read = 0
  let closing = false
  const destroy = () => socket.destroy()
  // Once every byte the client sent is read, closing sends no reset; wait only for our answer to be handed over.
  const closeClean = () => (socket.writableFinished ? socket.destroy() : socket.once('finish', destroy))
  const drop = (chunk: Buffer) => {
    read += chunk.length
    if (read < bounds.maxBytes) return
    req.off('data', drop)
    req.pause()
  }
  req.on('data', drop)
  req.once('end', () => {
    if (closing) closeClean()
  })
  req.resume()
  socket.destroySoon = function lingeringDestroySoon(this: Socket): void {
    if (req.complete) {
      Socket.prototype.destroySoon.call(this)
      return
    }
    closing = true
    this.end()
    const timer = setTimeout(destroy, bounds.maxMs)
    this.once('close', () => clearTimeout(timer))
  }
}
