import path from 'node:path/posix'

/**
 * Where a deploy may lay out its releases (deploy.path). Every deploy writes, renames and deletes under it
 * (releases/, current, tmp/, lock/), so a slip such as `/` or `/srv` would make it work in a folder the
 * system or other software owns. A path under the deploy user's home is fine; anything else must be asked
 * for with deploy.allowSystemPath. `/` and the home itself are never fine.
 *
 * Two checks: `deployPathProblem` on the text (the config schema), and `homeProblem` once a host has said
 * what its home is and what the path comes to there (the deploy's preflight).
 */

/** Why deploy.path cannot be used, from its text alone; undefined when it can. */
export function deployPathProblem(spec: string, allowSystemPath: boolean): string | undefined {
  if (/[\0\n\r]/.test(spec)) return 'has a control character'
  const inHome = spec === '~' || spec.startsWith('~/')
  if (!inHome && !spec.startsWith('/')) return `is "${spec}", which is neither absolute nor under ~/ (write /srv/feed or ~/feed)`
  const rest = inHome ? spec.slice(1) : spec
  if (rest.split('/').includes('..')) return `is "${spec}", which has a .. in it (write the folder it means)`
  const parts = path.normalize(`/${rest}`).split('/').filter(Boolean)
  if (inHome) return parts.length === 0 ? 'is the home folder itself; name a folder in it, such as ~/feed' : undefined
  if (parts.length === 0) return 'is /, the root of the file system'
  if (parts.length < 2 && !allowSystemPath) {
    return `is "${spec}", which has fewer than two components; use a folder of its own such as ~/feed, or /srv/feed with deploy.allowSystemPath: true`
  }
  // Whether an absolute path is in the deploy user's home is known on the host (homeProblem).
  return undefined
}

/**
 * The same rule on a host, where the path has been expanded (probe's root) and the home is known: an
 * absolute deploy.path that the host's home holds needs no allowSystemPath.
 */
export function homeProblem(root: string, home: string, allowSystemPath: boolean): string | undefined {
  if (allowSystemPath || !home.startsWith('/')) return undefined
  const r = path.normalize(root)
  const h = path.normalize(home).replace(/\/+$/, '')
  if (r.startsWith(`${h}/`) && r.length > h.length + 1) return undefined
  return `comes to ${r} on the host, outside the deploy user's home ${h}; set deploy.allowSystemPath: true to deploy there`
}
