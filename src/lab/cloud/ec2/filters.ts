import type {CloudInstance} from '../cloud-file.js'
import {CloudApiError, invalidParameterValue} from '../errors.js'
import {indexedStructs, indexedValues, type QueryParams} from '../query-params.js'

/** One DescribeInstances filter: an instance matches when the named attribute matches any value. */
export interface InstanceFilter {
  name: string
  values: string[]
  patterns: RegExp[]
}

export const supportedFilters = ['tag:KEY', 'tag-key', 'instance-state-name', 'instance-id', 'private-ip-address']

/** Reads Filter.N.Name / Filter.N.Value.M and rejects filters the lab does not know, like EC2 does. */
export function parseFilters(params: QueryParams): InstanceFilter[] {
  return indexedStructs(params, 'Filter').map((struct) => {
    const name = struct.get('Name')
    if (!name) throw new CloudApiError('MissingParameter', 'The request must contain the parameter Filter.N.Name')
    const values = indexedValues(struct, 'Value')
    if (!isSupported(name)) throw invalidParameterValue(`The filter '${name}' is invalid`)
    if (values.length === 0) throw invalidParameterValue(`The filter '${name}' requires at least one value`)
    return {name, values, patterns: values.map(wildcard)}
  })
}

function isSupported(name: string): boolean {
  return (name.startsWith('tag:') && name.length > 4) || supportedFilters.includes(name)
}

export function matchesFilters(instance: CloudInstance, filters: InstanceFilter[]): boolean {
  return filters.every((f) => attributeValues(instance, f.name).some((v) => f.patterns.some((p) => p.test(v))))
}

function attributeValues(instance: CloudInstance, name: string): string[] {
  if (name.startsWith('tag:')) {
    const value = instance.tags[name.slice(4)]
    return value === undefined ? [] : [value]
  }
  switch (name) {
    case 'tag-key':
      return Object.keys(instance.tags)
    case 'instance-state-name':
      return [instance.state]
    case 'instance-id':
      return [instance.instanceId]
    case 'private-ip-address':
      return [instance.privateIp]
    default:
      return []
  }
}

/** EC2 filter values may use * (any run) and ? (one character); \ escapes them. */
function wildcard(pattern: string): RegExp {
  let source = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === '\\' && i + 1 < pattern.length) source += escapeRegExp(pattern[++i]!)
    else if (c === '*') source += '.*'
    else if (c === '?') source += '.'
    else source += escapeRegExp(c)
  }
  return new RegExp(`^${source}$`, 's')
}

function escapeRegExp(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}
