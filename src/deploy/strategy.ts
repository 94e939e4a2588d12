import {UserError} from '../errors.js'

/**
 * The rolling strategy, as plain code with no SSH in it: batch ramps (`1,25%,50%`, the last size
 * repeating, as Ansible's `serial`), the max-fail bound, and the driver that switches batch after
 * batch, keeps re-checking every host that passed its gate (in the background, once more after each
 * batch, through the bake and at the end), switches a failed host back at once, and past max-fail rolls
 * back every host it switched. What "switch", "switch back" and "re-check" do on a host is passed in, so
 * tests drive it with plain functions.
 */

export type BatchSize = {count: number} | {percent: number}
export type MaxFail = {count: number} | {percent: number}

/** Why `text` is not a batch size (or, with allowZero, a max-fail), in words that fit after the key or flag; undefined when it is one. */
function sizeProblem(text: string, allowZero: boolean): string | undefined {
  const t = text.trim()
  const m = /^(\d+)(%?)$/.exec(t)
  const n = m ? Number(m[1]) : NaN
  const ok = m !== null && (m[2] ? n >= (allowZero ? 0 : 1) && n <= 100 : n >= (allowZero ? 0 : 1))
  return ok ? undefined : `has "${t}", which is not a host count or a percentage${allowZero ? '' : ' above 0'}`
}

function parseSize(text: string, flag: string, allowZero: boolean): BatchSize {
  const problem = sizeProblem(text, allowZero)
  if (problem) {
    throw new UserError(`${flag} ${problem}.`, {
      fix: `Use whole numbers or percentages, e.g. ${flag} ${allowZero ? '1 or 10%' : '1,25%,50%'}.`,
    })
  }
  const m = /^(\d+)(%?)$/.exec(text.trim())!
  return m[2] ? {percent: Number(m[1])} : {count: Number(m[1])}
}

/** Why a batch spec (deploy.batch) is not one, or undefined: the config schema's check, with the same rule as --batch. */
export function batchSpecProblem(spec: string): string | undefined {
  const parts = spec.split(',')
  if (parts.every((p) => p.trim() === '')) return 'is empty; give batch sizes such as 1,25%,50%'
  for (const p of parts) {
    const problem = sizeProblem(p, false)
    if (problem) return `${problem} (use host counts or percentages, such as 1,25%,50%)`
  }
  return undefined
}

/** Why a max-fail (deploy.maxFail) is not one, or undefined. */
export function maxFailProblem(text: string): string | undefined {
  const problem = sizeProblem(text, true)
  return problem ? `${problem} (use a count or a percentage, such as 1 or 10%)` : undefined
}

/** `1,25%,50%` → sizes; bad input is a UserError naming the flag. */
export function parseBatchSpec(spec: string, flag = '--batch'): BatchSize[] {
  const parts = spec.split(',')
  if (parts.every((p) => p.trim() === '')) throw new UserError(`${flag} is empty.`, {fix: `Give batch sizes, e.g. ${flag} 1,25%,50%.`})
  return parts.map((p) => parseSize(p, flag, false))
}

export function parseMaxFail(text: string, flag = '--max-fail'): MaxFail {
  return parseSize(text, flag, true)
}

function sizeOf(size: BatchSize, total: number): number {
  return 'count' in size ? size.count : Math.max(1, Math.ceil((size.percent * total) / 100))
}

/** Splits hosts (in order) into batches; the last size repeats until every host has a batch. */
export function planBatches<T>(hosts: readonly T[], sizes: readonly BatchSize[]): T[][] {
  const batches: T[][] = []
  let i = 0
  let step = 0
  while (i < hosts.length) {
    const n = sizeOf(sizes[Math.min(step, sizes.length - 1)]!, hosts.length)
    batches.push(hosts.slice(i, i + n))
    i += n
    step++
  }
  return batches
}

/** How many failed hosts are tolerated out of `total`. */
export function maxFailCount(mf: MaxFail, total: number): number {
  return 'count' in mf ? mf.count : Math.floor((mf.percent * total) / 100)
}

/** Where a host ended up. */
export type HostOutcome =
  | 'updated' // runs the new release, passed its gate and every re-check up to the end
  | 'failed' // failed its gate, a step or a re-check, and was switched back to what it ran before
  | 'rolled-back' // was updated, then rolled back because the deploy stopped
  | 'revert-failed' // failed, and switching it back failed too: needs a person
  | 'not-started' // the deploy stopped before this host's batch
  | 'interrupted' // Ctrl-C while it was in flight: it was switched back

export interface SwitchResult {
  ok: boolean
  /** The host was interrupted between steps (it must be switched back). */
  interrupted?: boolean
  error?: string
}

export interface RollingHooks<H> {
  /** Switches the host to the new release and gates it; must not throw. */
  switchHost(host: H, shouldStop: () => boolean): Promise<SwitchResult>
  /** Switches the host back to what it ran before and gates that; must not throw. */
  switchBack(host: H, why: 'failed' | 'rollback' | 'interrupted'): Promise<SwitchResult>
  /**
   * Asks hosts that passed their gate whether they still do (same release, same process); returns those that
   * do not, with why. Must not throw.
   */
  recheck?(hosts: readonly H[]): Promise<Map<H, string>>
  onBatch?(index: number, hosts: readonly H[]): void
  onBake?(ms: number): void
  /** A re-check saw the host fail after its gate. */
  onLost?(host: H, why: string): void
}

export interface RollingOptions {
  maxFail: number
  signal?: AbortSignal | undefined
  /** How often every host that passed its gate is re-checked while the run goes on (ms). */
  pollMs?: number
  /** After the last batch, how long the fleet is watched before the run ends (ms). */
  bakeMs?: number
}

export interface RollingResult<H> {
  outcomes: Map<H, {outcome: HostOutcome; error?: string}>
  /** Why the deploy stopped early, if it did. */
  stopped: 'max-fail' | 'interrupted' | null
  failed: number
  /** How long the bake lasted (ms). */
  bakedMs: number
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/**
 * Runs the batches in order. Within a batch every host switches at once; a host that fails is switched
 * back at once. A host that passed its gate is re-checked every pollMs from then on, and every host
 * switched so far once more after each batch; one that fails a re-check counts as failed and is switched
 * back. After the last batch the fleet is watched bakeMs, then checked a last time. Past `maxFail`
 * failures, every updated host is rolled back and no batch starts. An aborted signal starts no new batch
 * or host; hosts in flight finish their step and are switched back.
 */
export async function rollOut<H>(batches: readonly (readonly H[])[], opts: RollingOptions, hooks: RollingHooks<H>): Promise<RollingResult<H>> {
  const {maxFail, signal} = opts
  const outcomes = new Map<H, {outcome: HostOutcome; error?: string}>()
  for (const h of batches.flat()) outcomes.set(h, {outcome: 'not-started'})
  let failed = 0
  let stopped: RollingResult<H>['stopped'] = null
  let bakedMs = 0
  const shouldStop = () => signal?.aborted === true
  const overMax = () => failed > maxFail
  /** Passed their gate and every re-check so far. */
  const good = new Set<H>()
  const handling: Promise<void>[] = []

  const lost = (host: H, why: string) => {
    if (!good.delete(host)) return
    failed++
    hooks.onLost?.(host, why)
    outcomes.set(host, {outcome: 'failed', error: why})
    handling.push(
      hooks.switchBack(host, 'failed').then((back) => {
        if (!back.ok) outcomes.set(host, {outcome: 'revert-failed', error: `${why}; switching back: ${back.error ?? 'failed'}`})
      }),
    )
  }
  const recheckNow = async () => {
    if (!hooks.recheck || good.size === 0) return
    for (const [h, why] of await hooks.recheck([...good])) lost(h, why)
  }
  const settle = async () => {
    while (handling.length > 0) await Promise.all(handling.splice(0))
  }

  // The watch: from its gate on, a host is asked every pollMs, during later batches and through the bake.
  let watching = Boolean(hooks.recheck)
  let wake = () => {}
  const pollMs = opts.pollMs ?? 1000
  const watch = (async () => {
    while (watching) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, pollMs)
        wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
      if (watching) await recheckNow()
    }
  })()

  try {
    for (const [index, batch] of batches.entries()) {
      if (shouldStop()) {
        stopped = 'interrupted'
        break
      }
      if (overMax()) {
        stopped = 'max-fail'
        break
      }
      hooks.onBatch?.(index, batch)
      await Promise.all(
        batch.map(async (host) => {
          const r = await hooks.switchHost(host, shouldStop)
          if (r.ok) {
            outcomes.set(host, {outcome: 'updated'})
            good.add(host)
            return
          }
          const why = r.interrupted ? 'interrupted' : 'failed'
          if (why === 'failed') failed++
          const back = await hooks.switchBack(host, why)
          const error = [r.error, back.ok ? undefined : `switching back: ${back.error ?? 'failed'}`].filter(Boolean).join('; ')
          outcomes.set(host, {outcome: back.ok ? why : 'revert-failed', ...(error ? {error} : {})})
        }),
      )
      // Every host switched so far, before the next batch starts.
      await recheckNow()
      await settle()
      if (overMax()) {
        stopped = 'max-fail'
        break
      }
      if (shouldStop()) {
        stopped = 'interrupted'
        break
      }
    }

    const bakeMs = opts.bakeMs ?? 0
    if (!stopped && bakeMs > 0 && good.size > 0) {
      hooks.onBake?.(bakeMs)
      const t0 = performance.now()
      while (performance.now() - t0 < bakeMs && !overMax() && !shouldStop()) await sleep(Math.min(50, bakeMs - (performance.now() - t0)))
      bakedMs = Math.round(performance.now() - t0)
      await settle()
      if (overMax()) stopped = 'max-fail'
      else if (shouldStop()) stopped = 'interrupted'
    }
    if (!stopped) {
      // The end: only what is checked now is reported as updated.
      await recheckNow()
      await settle()
      if (overMax()) stopped = 'max-fail'
    }
  } finally {
    watching = false
    wake()
    await watch
    await settle()
  }

  if (stopped === 'max-fail') {
    const updated = [...good]
    good.clear()
    await Promise.all(
      updated.map(async (host) => {
        const back = await hooks.switchBack(host, 'rollback')
        outcomes.set(host, back.ok ? {outcome: 'rolled-back'} : {outcome: 'revert-failed', error: `rolling back: ${back.error ?? 'failed'}`})
      }),
    )
  }
  return {outcomes, stopped, failed, bakedMs}
}
