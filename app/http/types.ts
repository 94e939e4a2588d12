import type {ParameterizedContext} from 'koa'

import type {Logger} from '../logger.js'

/** Per-request state the middleware fills in. */
export interface AppState {
  requestId: string
  log: Logger
  /** Set by requireUser: the user the bearer token was issued for. */
  userId?: bigint
  /** Set by requireUser: the token generation of that token (the user's current one). */
  tokenGeneration?: number
}

export type Ctx = ParameterizedContext<AppState>
export type Next = () => Promise<unknown>
