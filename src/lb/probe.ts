import http from 'node:http'

/** One deep probe of a node: HTTP GET of its health path (src/lb/nginx-conf.ts's NGINX_HEALTH_PATH by default). */
export interface ProbeResult {
  ok: boolean
  /** The HTTP status, when the node answered. */
  status?: number
  /** Why it failed, in a few words (connection refused, timed out after 2000 ms, HTTP 502). */
  error?: string
  ms: number
}

export interface ProbeTarget {
  address: string
  port: number
  path: string
}

/**
 * 200 within the timeout passes; anything else fails (another status, a refused or reset connection, no
 * answer in time). A fresh connection each time, as the load balancer's own check makes: a kept-alive
 * one could hide a node that no longer accepts connections.
 */
export function probe(target: ProbeTarget, timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  const start = performance.now()
  const ms = () => Math.round(performance.now() - start)
  return new Promise((resolve) => {
    let settled = false
    const done = (r: Omit<ProbeResult, 'ms'>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      resolve({...r, ms: ms()})
    }
    const req = http.get(
      {host: target.address, port: target.port, path: target.path, agent: false, headers: {'user-agent': 'feedops-lb-probe', connection: 'close'}, ...(signal ? {signal} : {})},
      (res) => {
        res.resume()
        const status = res.statusCode ?? 0
        // The status is the answer; the body is not needed.
        done(status === 200 ? {ok: true, status} : {ok: false, status, error: `HTTP ${status}`})
      },
    )
    req.on('error', (err: NodeJS.ErrnoException) => done({ok: false, error: probeError(err)}))
    const timer = setTimeout(() => done({ok: false, error: `no answer within ${timeoutMs} ms`}), timeoutMs)
  })
}

function probeError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused'
    case 'ECONNRESET':
      return 'connection reset'
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'unreachable'
    case 'ABORT_ERR':
      return 'interrupted'
    default:
      return err.code ?? err.message
  }
}

/** Every node at once: a pass takes as long as its slowest probe, at most the timeout. */
export function probeAll<T extends ProbeTarget>(targets: readonly T[], timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult[]> {
  return Promise.all(targets.map((t) => probe(t, timeoutMs, signal)))
}
