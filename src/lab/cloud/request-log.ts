import {appendFileSync, existsSync, readFileSync, renameSync, statSync} from 'node:fs'

import {labPaths} from '../layout.js'

/**
 * <lab>/cloud-requests.jsonl: one line per request the cloud endpoint answered, so a test can
 * assert what a command asked AWS for (or that it asked nothing: a bad config must make no call).
 * Past 16 MiB it moves to cloud-requests.jsonl.1 (one generation kept), so an `lb watch` left running
 * against the lab does not fill the disk.
 */

const maxBytes = 16 * 1024 * 1024
let appends = 0
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
  const file = labPaths.cloudRequests(dir)
  try {
    if (++appends % 1000 === 0 && statSync(file).size > maxBytes) renameSync(file, `${file}.1`)
    appendFileSync(file, `${JSON.stringify(record)}\n`)
  } catch {
    // the lab dir went away (a test removed it): the answer matters more than its log line
  }
}

/** Every request logged so far (optionally only those from `since`, an ISO time). */
export function readRequestLog(dir: string, since?: string): CloudRequestRecord[] {
  const file = labPaths.cloudRequests(dir)
  return [`${file}.1`, file]
    .filter((f) => existsSync(f))
    .flatMap((f) => readFileSync(f, 'utf8').split('\n'))
    .filter(Boolean)
    .map((line) => JSON.parse(line) as CloudRequestRecord)
    .filter((r) => since === undefined || r.time >= since)
}
