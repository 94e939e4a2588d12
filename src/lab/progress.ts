/**
 * Step progress for `lab up`/`lab down` on stderr: a listr2 task whose lines are the steps when
 * stderr is a terminal, plain "lab: step" lines otherwise, nothing with --json.
 */
export interface StepProgress {
  step(msg: string): void
  finish(ok: boolean): Promise<void>
}

export async function stepProgress(title: string, mode: 'tty' | 'plain' | 'off'): Promise<StepProgress> {
  if (mode === 'off') return {step() {}, finish: async () => {}}
  if (mode === 'plain') {
    return {
      step: (msg) => process.stderr.write(`lab: ${msg}\n`),
      finish: async () => {},
    }
  }
  const {Listr, ListrLogger, ProcessOutput} = await import('listr2')
  let settle: ((err?: Error) => void) | undefined
  let setOutput: ((text: string) => void) | undefined
  let started!: () => void
  const ready = new Promise<void>((r) => (started = r))
  const pending: string[] = []
  const list = new Listr(
    [
      {
        title,
        task: (_ctx: unknown, task: {output: string}) =>
          new Promise<void>((resolve, reject) => {
            setOutput = (text) => (task.output = text)
            for (const msg of pending.splice(0)) setOutput(msg)
            settle = (err) => (err ? reject(err) : resolve())
            started()
          }),
        rendererOptions: {persistentOutput: true, outputBar: Infinity},
      },
    ],
    {
      exitOnError: false,
      registerSignalListeners: false,
      rendererOptions: {logger: new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)})},
    },
  )
  const running = list.run().catch(() => {})
  return {
    step: (msg) => (setOutput ? setOutput(msg) : pending.push(msg)),
    async finish(ok) {
      await ready
      settle?.(ok ? undefined : new Error('failed'))
      await running
    },
  }
}
