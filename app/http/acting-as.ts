import {forbidden} from './errors.js'
import type {AppState} from './types.js'

/** The acting user (from the token) must be the :id of the path; a 403 otherwise. */
export function actingAs(state: AppState, id: bigint): void {
  if (state.userId !== id) throw forbidden(`this token may not act for user ${id}`)
}
