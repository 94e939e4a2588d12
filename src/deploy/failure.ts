/**
 * Whether a host failed because of the release's code or because of its config. The config is checked before
 * shipping with the app's own start-up checks (app-config.ts), so what still fails on a host is what only the
 * host can tell: a server its config names does not answer (a dead pooledUrl), or the app refused its config
 * or environment at start (its UserError path exits 2). Such a release is not marked bad: the same code with
 * a config that works is fine, and saying "bad release" would send the operator after the wrong thing.
 */

/** How a gate or a start says it failed for the config (gate.ts gateFailure). */
export const CONFIG_FAILURE = 'config failure'

/** The app exits 2 when it refuses its config or environment at start (app/main.ts, src/errors.ts). */
const START_REFUSED = /exited with code 2 before listening/

export type FailureKind = 'config' | 'code'

/** The kind of a host's failure, from its error text (what the gate or the restart step said). */
export function failureKind(error: string | null | undefined): FailureKind {
  if (!error) return 'code'
  return error.startsWith(CONFIG_FAILURE) || START_REFUSED.test(error) ? 'config' : 'code'
}

/** Whether a stopped run failed for its config only: every failed host's failure is a config failure. */
export function configOnly(errors: readonly (string | null)[]): boolean {
  return errors.length > 0 && errors.every((e) => failureKind(e) === 'config')
}
