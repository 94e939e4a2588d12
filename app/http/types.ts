import type {ParameterizedContext} from 'koa'

import type {Logger} from '../logger.js'

/** Per-request state the middleware fills in. */
export interface AppState {
  requestId: string
  log: Logger
  /** Set by requireUser: the user the bearer token was issued for. */
  userId?: bigint
}

export type Ctx = ParameterizedContext<AppState>
export type Next = () => Promise<unknown>
