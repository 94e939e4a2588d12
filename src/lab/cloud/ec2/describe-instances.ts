import {createHash} from 'node:crypto'

import {instanceStateCodes, type CloudInstance} from '../cloud-file.js'
import {CloudApiError, invalidParameterValue} from '../errors.js'
import {booleanParam, indexedValues, integerParam} from '../query-params.js'
import type {CloudRequest} from '../service.js'
import {toXml, type XmlObject} from '../xml.js'
import {matchesFilters, parseFilters, type InstanceFilter} from './filters.js'

const namespace = 'http://ec2.amazonaws.com/doc/2016-11-15/'

/**
 * EC2 DescribeInstances over cloud.json's instances: InstanceId.N, Filter.N, MaxResults/NextToken.
 * Each instance is its own reservation (as `run-instances --count 1` would make them). Pages hold
 * min(MaxResults, cloud.json ec2.pageSize) instances.
 */
export function describeInstances(req: CloudRequest): string {
  const {params, cloud} = req
  if (booleanParam(params, 'DryRun')) {
    throw new CloudApiError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412)
  }
  const ids = indexedValues(params, 'InstanceId')
  const filters = parseFilters(params)
  const maxResults = integerParam(params, 'MaxResults')
  if (maxResults !== undefined) {
    if (ids.length > 0) {
      throw new CloudApiError('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults')
    }
    if (maxResults < 5 || maxResults > 1000) {
      throw invalidParameterValue(`Value ( ${maxResults} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`)
    }
  }

  let instances = cloud.ec2.instances
  if (ids.length > 0) {
    const known = new Set(instances.map((i) => i.instanceId))
    const missing = ids.filter((id) => !known.has(id))
    if (missing.length === 1) throw new CloudApiError('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`)
    if (missing.length > 1) throw new CloudApiError('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`)
    const wanted = new Set(ids)
    instances = instances.filter((i) => wanted.has(i.instanceId))
  }
  instances = instances.filter((i) => matchesFilters(i, filters))

  const query = queryFingerprint(ids, filters)
  const token = params.get('NextToken')
  const offset = token ? decodeNextToken(token, query) : 0
  const pageSize = Math.min(maxResults ?? Number.MAX_SAFE_INTEGER, cloud.ec2.pageSize)
  const page = instances.slice(offset, offset + pageSize)
  const next = offset + page.length < instances.length ? encodeNextToken(offset + page.length, query) : undefined

  return toXml(
    'DescribeInstancesResponse',
    {
      requestId: req.requestId,
      reservationSet: {item: page.map((i) => reservationXml(i, req.region))},
      nextToken: next,
    },
    namespace,
  )
}

function reservationXml(i: CloudInstance, region: string): XmlObject {
  return {
    reservationId: `r-${i.instanceId.slice(2)}`,
    ownerId: '000000000000',
    groupSet: '',
    instancesSet: {item: [instanceXml(i, region)]},
  }
}

function instanceXml(i: CloudInstance, region: string): XmlObject {
  const running = i.state === 'running'
  return {
    instanceId: i.instanceId,
    imageId: i.imageId,
    instanceState: {code: instanceStateCodes[i.state], name: i.state},
    privateDnsName: privateDnsName(i.privateIp, region),
    dnsName: running && i.publicIp ? publicDnsName(i.publicIp, region) : '',
    reason: i.state === 'stopped' ? `User initiated (${i.launchTime.slice(0, 19).replace('T', ' ')} GMT)` : '',
    amiLaunchIndex: 0,
    productCodes: '',
    instanceType: i.instanceType,
    launchTime: i.launchTime,
    placement: {availabilityZone: i.availabilityZone ?? `${region}a`, groupName: '', tenancy: 'default'},
    monitoring: {state: 'disabled'},
    privateIpAddress: i.privateIp,
    ipAddress: running ? i.publicIp : undefined,
    architecture: 'x86_64',
    rootDeviceType: 'ebs',
    rootDeviceName: '/dev/xvda',
    virtualizationType: 'hvm',
    hypervisor: 'xen',
    tagSet: {item: Object.entries(i.tags).map(([key, value]) => ({key, value}))},
  }
}

function privateDnsName(ip: string, region: string): string {
  const host = `ip-${ip.replaceAll('.', '-')}`
  return region === 'us-east-1' ? `${host}.ec2.internal` : `${host}.${region}.compute.internal`
}

function publicDnsName(ip: string, region: string): string {
  const host = `ec2-${ip.replaceAll('.', '-')}`
  return region === 'us-east-1' ? `${host}.compute-1.amazonaws.com` : `${host}.${region}.compute.amazonaws.com`
}

/** A token is only good for the query that made it (same ids and filters), like EC2's. */
function queryFingerprint(ids: string[], filters: InstanceFilter[]): string {
  const canonical = JSON.stringify([ids, filters.map((f) => [f.name, f.values])])
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 16)
}

function encodeNextToken(offset: number, query: string): string {
  return Buffer.from(JSON.stringify({o: offset, q: query})).toString('base64url')
}

function decodeNextToken(token: string, query: string): number {
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'))
  } catch {
    decoded = undefined
  }
  const d = decoded as {o?: unknown; q?: unknown} | undefined
  if (!d || typeof d !== 'object' || !Number.isSafeInteger(d.o) || (d.o as number) < 0 || d.q !== query) {
    throw invalidParameterValue(`Invalid value '${token.slice(0, 64)}' for nextToken`)
  }
  return d.o as number
}
