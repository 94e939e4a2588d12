import type {CloudFile} from './cloud-file.js'
import {CloudApiError} from './errors.js'

/**
 * Faults a test sets in cloud.json's `faults` (read on every request, like the rest of it): every
 * Nth matching call answers Throttling "Rate exceeded" (as AWS does when a caller goes past its
 * rate), every matching call is answered `delayMs` late, and `error` makes every matching call
 * answer that AWS error (ExpiredToken 403 for expired credentials, say). The count starts again whenever the
 * faults change. Nothing outside the lab knows: the answers are AWS's own.
 */
export class FaultInjector {
  private key = ''
  private count = 0

  async apply(cloud: CloudFile, service: string, action: string): Promise<void> {
    const f = cloud.faults
    const key = JSON.stringify(f ?? null)
    if (key !== this.key) {
      this.key = key
      this.count = 0
    }
    if (!f) return
    if (f.services && !f.services.includes(service)) return
    if (f.actions && !f.actions.includes(action)) return
    if (f.delayMs) await new Promise((resolve) => setTimeout(resolve, f.delayMs))
    if (f.throttleEvery && ++this.count % f.throttleEvery === 0) throw new CloudApiError('Throttling', 'Rate exceeded', 400)
    if (f.error) throw new CloudApiError(f.error.code, f.error.message, f.error.status)
  }
}
