import type {CloudFile} from './cloud-file.js'
import type {CloudApiError} from './errors.js'
import type {QueryParams} from './query-params.js'

/** One request, as an action handler sees it. */
export interface CloudRequest {
  action: string
  params: QueryParams
  /** cloud.json as read for this request. */
  cloud: CloudFile
  /** The lab dir cloud.json lives in (handlers that keep state keep it there). */
  dir: string
  /** From the SigV4 credential scope; us-east-1 when absent. */
  region: string
  requestId: string
}

/** Returns the whole XML response document; throws CloudApiError for an AWS-style error. */
export type ActionHandler = (req: CloudRequest) => string | Promise<string>

/**
 * One AWS service the endpoint answers (EC2 now; Classic ELB is one more of these). A request goes
 * to the service named by its SigV4 signing scope (or, unsigned by scope, its Version parameter),
 * then to the handler of its Action.
 */
export interface CloudService {
  /** SigV4 signing name, e.g. "ec2", "elasticloadbalancing". */
  signingName: string
  /** API version the SDK sends as Version=…, e.g. "2016-11-15". */
  version: string
  actions: Readonly<Record<string, ActionHandler>>
  /** The service's error document. */
  errorXml(err: CloudApiError, requestId: string): string
}
