import {UserError} from '../errors.js'
import type {Host} from './host.js'

const collator = new Intl.Collator('en', {numeric: true, sensitivity: 'variant'})

/** Natural order: app2 before app10. */
export function compareHostNames(a: string, b: string): number {
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0)
}

export function sortHosts(hosts: Host[]): Host[] {
  return [...hosts].sort((a, b) => compareHostNames(a.name, b.name))
}

/** Host names are how people pick hosts (--hosts) and how results are keyed: they must be unique. */
export function assertUniqueNames(hosts: Host[], source: string, fix: string): void {
  const byName = new Map<string, Host[]>()
  for (const h of hosts) byName.set(h.name, [...(byName.get(h.name) ?? []), h])
  const dups = [...byName.entries()].filter(([, hs]) => hs.length > 1)
  if (dups.length === 0) return
  const what = dups
    .slice(0, 5)
    .map(([name, hs]) => `${name} (${hs.map((h) => h.instanceId ?? h.address).join(', ')})`)
    .join('; ')
  throw new UserError(`${source} has more than one host with the same name: ${what}.`, {fix})
}
