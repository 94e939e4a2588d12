/**
 * Per-host progress on stderr with listr2, shared by commands that work on many hosts. The work itself
 * runs elsewhere (the SSH runner); this only draws it: one line per host whose title follows what the
 * host is doing, ticked or crossed when it is done. listr2 is loaded only when progress is drawn, never
 * installs signal handlers (the command owns Ctrl-C and exit codes) and never stops on a failed host.
 */
export interface HostProgress {
  /** What a host is doing now. */
  update(host: string, text: string): void
  /** The host is done; a failed host's text is shown as its error. */
  done(host: string, ok: boolean, text?: string): void
  /** Waits for the display to finish drawing (call after every host is done). */
  finish(): Promise<void>
}

const noop: HostProgress = {update() {}, done() {}, finish: async () => {}}

interface Slot {
  title?: (t: string) => void
  settle?: (err?: Error) => void
  pending?: {text: string}
  result?: {ok: boolean; text: string | undefined}
}

export async function hostProgress(hosts: readonly string[], opts: {enabled: boolean}): Promise<HostProgress> {
  if (!opts.enabled || hosts.length === 0) return noop
  const {Listr, ListrLogger, ProcessOutput} = await import('listr2')
  const slots = new Map<string, Slot>(hosts.map((h) => [h, {}]))
  const label = (host: string, text: string) => `${host}: ${text}`

  const settle = (host: string, slot: Slot) => {
    if (!slot.result || !slot.settle) return
    const {ok, text} = slot.result
    if (text) slot.title?.(label(host, ok ? text : 'failed'))
    slot.settle(ok ? undefined : new Error(text ?? 'failed'))
  }

  const list = new Listr(
    hosts.map((host) => ({
      title: label(host, 'waiting'),
      task: (_ctx: unknown, task: {title: string}) =>
        new Promise<void>((resolve, reject) => {
          const slot = slots.get(host)!
          slot.title = (t) => (task.title = t)
          slot.settle = (err) => (err ? reject(err) : resolve())
          if (slot.pending) slot.title(label(host, slot.pending.text))
          settle(host, slot)
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
  const running = list.run().catch(() => {})

  return {
    update(host, text) {
      const slot = slots.get(host)
      if (!slot || slot.result) return
      if (slot.title) slot.title(label(host, text))
      else slot.pending = {text}
    },
    done(host, ok, text) {
      const slot = slots.get(host)
      if (!slot || slot.result) return
      slot.result = {ok, text}
      settle(host, slot)
    },
    async finish() {
      for (const [host, slot] of slots) {
        if (!slot.result) {
          slot.result = {ok: false, text: 'interrupted'}
          settle(host, slot)
        }
      }
      await running
    },
  }
}
