import {invalidParameterValue} from './errors.js'

/**
 * Parameters of an AWS query-protocol request (form body of a POST, or the URL query of a GET),
 * and readers for its flattened lists: EC2 writes `InstanceId.1`, `Filter.1.Value.2`; the query
 * protocol writes `Instances.member.1.InstanceId`.
 */
export type QueryParams = ReadonlyMap<string, string>

export function parseQueryParams(search: string, body: string): QueryParams {
  const params = new Map<string, string>()
  for (const [k, v] of new URLSearchParams(search)) params.set(k, v)
  for (const [k, v] of new URLSearchParams(body)) params.set(k, v)
  return params
}

/** Values of PREFIX.1, PREFIX.2, … in index order. */
export function indexedValues(params: QueryParams, prefix: string): string[] {
  return indexedStructs(params, prefix, true).map((s) => s.get('')!)
}

/** Groups PREFIX.N.REST keys by N, in index order: one map of REST → value per N. */
export function indexedStructs(params: QueryParams, prefix: string, scalar = false): Map<string, string>[] {
  const byIndex = new Map<number, Map<string, string>>()
  const head = `${prefix}.`
  for (const [key, value] of params) {
    if (!key.startsWith(head)) continue
    const rest = key.slice(head.length)
    const dot = rest.indexOf('.')
    const indexText = dot === -1 ? rest : rest.slice(0, dot)
    const sub = dot === -1 ? '' : rest.slice(dot + 1)
    if (scalar !== (sub === '')) continue
    const index = Number(indexText)
    if (!/^[1-9][0-9]{0,4}$/.test(indexText)) throw invalidParameterValue(`The parameter ${key} has an invalid index.`)
    let entry = byIndex.get(index)
    if (!entry) byIndex.set(index, (entry = new Map()))
    entry.set(sub, value)
  }
  return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, entry]) => entry)
}

/** An optional integer parameter. */
export function integerParam(params: QueryParams, name: string): number | undefined {
  const text = params.get(name)
  if (text === undefined) return undefined
  if (!/^-?[0-9]+$/.test(text)) throw invalidParameterValue(`Value (${text}) for parameter ${name} is invalid. Expecting an integer.`)
  return Number(text)
}

export function booleanParam(params: QueryParams, name: string): boolean {
  return params.get(name)?.toLowerCase() === 'true'
}
