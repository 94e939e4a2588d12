export interface InterruptTrap {
  signal: AbortSignal
  /** The signal that interrupted the run, if any. */
  readonly received: NodeJS.Signals | undefined
  dispose(): void
}

/**
 * First SIGINT/SIGTERM: the returned signal aborts and `onInterrupt` runs, so the work winds down and
 * reports what finished. A second one removes the handlers and raises the signal again, which ends the
 * process the default way (the shell sees 130 for SIGINT) without anyone calling process.exit.
 */
export function trapInterrupts(onInterrupt: (sig: NodeJS.Signals) => void): InterruptTrap {
  const controller = new AbortController()
  let received: NodeJS.Signals | undefined
  const dispose = () => {
    process.off('SIGINT', handler)
    process.off('SIGTERM', handler)
  }
  function handler(sig: NodeJS.Signals) {
    if (received) {
      dispose()
      process.kill(process.pid, sig)
      return
    }
    received = sig
    controller.abort()
    onInterrupt(sig)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return {
    signal: controller.signal,
    get received() {
      return received
    },
    dispose,
  }
}

/** "Interrupted" for Ctrl-C, "Terminated" for SIGTERM: the first word of a command's interrupt notice. */
export function interruptedWord(sig: NodeJS.Signals): string {
  return sig === 'SIGINT' ? 'Interrupted' : 'Terminated'
}
