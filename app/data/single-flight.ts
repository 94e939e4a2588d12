/**
 * Request collapsing: concurrent calls with the same key share one run of `fn`, and the next call after it
 * settles starts a new run. Nothing is cached beyond the run, so a caller sees data read at most one run
 * before it asked (a feed read takes milliseconds). This is what keeps a hot feed (one reader on many
 * connections, a page everyone refreshes) from costing one set of shard queries per request.
 */
export class SingleFlight<T> {
  private readonly running = new Map<string, Promise<T>>()

  run(key: string, fn: () => Promise<T>): Promise<T> {
    let shared = this.running.get(key)
    if (!shared) {
      shared = fn().finally(() => this.running.delete(key))
      this.running.set(key, shared)
    }
    return shared
  }

  /** Runs in flight now (for tests and metrics). */
  get size(): number {
    return this.running.size
  }
}
