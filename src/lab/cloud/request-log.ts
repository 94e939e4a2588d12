import {appendFileSync, existsSync, readFileSync} from 'node:fs'

import {labPaths} from '../layout.js'

/**
 * <lab>/cloud-requests.jsonl: one line per request the cloud endpoint answered, so a test can
 * assert what a command asked AWS for (or that it asked nothing: a bad config must make no call).
 */
export interface CloudRequestRecord {
  time: string
  /** SigV4 signing name: ec2, elasticloadbalancing. */
  service: string
  /** The API version asked for (2012-06-01 Classic ELB, 2015-12-01 ELBv2, 2016-11-15 EC2). */
  version: string
  action: string
  status: number
  /** The AWS error code, when it answered one (Throttling when injected). */
  code?: string
  ms: number
}

export function appendRequestLog(dir: string, record: CloudRequestRecord): void {
  try {
    appendFileSync(labPaths.cloudRequests(dir), `${JSON.stringify(record)}\n`)
  } catch {
    // the lab dir went away (a test removed it): the answer matters more than its log line
  }
}

/** Every request logged so far (optionally only those from `since`, an ISO time). */
export function readRequestLog(dir: string, since?: string): CloudRequestRecord[] {
  const file = labPaths.cloudRequests(dir)
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as CloudRequestRecord)
    .filter((r) => since === undefined || r.time >= since)
}
