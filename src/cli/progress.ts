import {printable} from './escape.js'

/**
 * Progress on stderr for a list of items (hosts, servers, shards), each going through steps. The work
 * runs elsewhere; this only draws it and collects what failed: one line per item whose text follows
 * what the item is doing, ticked or crossed when it is done.
 *
 * - 'tty': listr2, loaded only then, with its own signal handlers off (the command owns Ctrl-C and exit
 *   codes) and never stopping on a failed item;
 * - 'plain': "item: text" lines for logs and cron (stderr is not a terminal): an item's first step,
 *   then at most one line a second per item, then how it ended;
 * - 'off': nothing (--json). stdout is never written to.
 */
export type ProgressMode = 'tty' | 'plain' | 'off'

/** 'off' with --json, listr2 when stderr is a terminal, plain lines otherwise. */
export function progressMode(json: boolean, stream: {isTTY?: boolean} = process.stderr): ProgressMode {
  if (json) return 'off'
  return stream.isTTY ? 'tty' : 'plain'
}

export interface ItemError {
  item: string
  error: string
}

export interface ItemProgress {
  /** What an item is doing now. */
  update(item: string, text: string): void
  /** The item is done; a failed item's text is its error. */
  done(item: string, ok: boolean, text?: string): void
  /**
   * Waits for the display to finish drawing (call once, after the work, also when it threw). An item
   * never marked done counts as interrupted. Returns the items that failed, in item order.
   */
  finish(): Promise<ItemError[]>
}

export interface ItemProgressOptions {
  mode: ProgressMode
}

const WAITING = 'waiting'
const PLAIN_INTERVAL_MS = 1000

interface Slot {
  text: string
  result?: {ok: boolean; text: string | undefined}
  title?: (t: string) => void
  settle?: (err?: Error) => void
}

export async function itemProgress(items: readonly string[], opts: ItemProgressOptions): Promise<ItemProgress> {
  const slots = new Map<string, Slot>(items.map((item) => [item, {text: WAITING}]))
  // step text often comes from hosts (errors, command output)
  const label = (item: string, text: string) => printable(`${item}: ${text}`)
  const draw = await drawer(opts.mode, items, slots, label)

  return {
    update(item, text) {
      const slot = slots.get(item)
      if (!slot || slot.result || slot.text === text) return
      slot.text = text
      draw.update(item, slot)
    },
    done(item, ok, text) {
      const slot = slots.get(item)
      if (!slot || slot.result) return
      slot.result = {ok, text}
      draw.done(item, slot)
    },
    async finish() {
      for (const [item, slot] of slots) {
        if (!slot.result) {
          slot.result = {ok: false, text: 'interrupted'}
          // a plain log gets no line for an item that never started (the work failed before it)
          if (opts.mode !== 'plain' || slot.text !== WAITING) draw.done(item, slot)
        }
      }
      await draw.finished
      return [...slots].filter(([, s]) => !s.result!.ok).map(([item, s]) => ({item, error: s.result!.text ?? 'failed'}))
    },
  }
}

interface Drawer {
  update(item: string, slot: Slot): void
  done(item: string, slot: Slot): void
  finished: Promise<void>
}

async function drawer(mode: ProgressMode, items: readonly string[], slots: Map<string, Slot>, label: (item: string, text: string) => string): Promise<Drawer> {
  if (mode === 'off' || items.length === 0) return {update() {}, done() {}, finished: Promise.resolve()}
  if (mode === 'plain') {
    const line = (item: string, text: string) => process.stderr.write(`${label(item, text)}\n`)
    const printed = new Map<string, number>()
    return {
      // A log gets an item's first step, then at most a line a second per item, then how it ended.
      update: (item, slot) => {
        const now = performance.now()
        if (now - (printed.get(item) ?? -Infinity) < PLAIN_INTERVAL_MS) return
        printed.set(item, now)
        line(item, slot.text)
      },
      done: (item, slot) => line(item, slot.result!.ok ? (slot.result!.text ?? 'done') : slot.result!.text ? `failed: ${slot.result!.text}` : 'failed'),
      finished: Promise.resolve(),
    }
  }

  const {Listr, ListrLogger, ProcessOutput} = await import('listr2')
  const settle = (item: string, slot: Slot) => {
    if (!slot.result || !slot.settle) return
    const {ok, text} = slot.result
    if (text) slot.title?.(label(item, ok ? text : 'failed'))
    slot.settle(ok ? undefined : new Error(text ?? 'failed'))
  }
  const list = new Listr(
    items.map((item) => ({
      title: label(item, WAITING),
      task: (_ctx: unknown, task: {title: string}) =>
        new Promise<void>((resolve, reject) => {
          const slot = slots.get(item)!
          slot.title = (t) => (task.title = t)
          slot.settle = (err) => (err ? reject(err) : resolve())
          slot.title(label(item, slot.text))
          settle(item, slot)
        }),
    })),
    {
      concurrent: true,
      exitOnError: false,
      registerSignalListeners: false,
      rendererOptions: {
        collapseErrors: false,
        logger: new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)}),
      },
    },
  )
  const finished = list.run().then(
    () => undefined,
    () => undefined,
  )
  return {
    update: (item, slot) => slot.title?.(label(item, slot.text)),
    done: (item, slot) => settle(item, slot),
    finished,
  }
}

/**
 * Runs `work` with progress for `items`, and finishes the drawing however `work` ends: when it throws,
 * items not yet done are marked failed (the error itself is the command's to print, once).
 */
export async function withProgress<R>(items: readonly string[], mode: ProgressMode, work: (progress: ItemProgress) => Promise<R>): Promise<R> {
  const progress = await itemProgress(items, {mode})
  try {
    return await work(progress)
  } catch (err) {
    for (const item of items) progress.done(item, false)
    throw err
  } finally {
    await progress.finish()
  }
}
