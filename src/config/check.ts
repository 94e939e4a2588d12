import {checkAppConfig} from '../deploy/app-config.js'
import {deploySettings} from '../deploy/context.js'
import type {Host} from '../inventory/host.js'
import {staticHosts} from '../inventory/static.js'
import {assertUniqueNames} from '../inventory/sort.js'
import {validateAppSection} from './app.js'
import type {LoadedConfig} from './load.js'
import type {EnvironmentConfig} from './schema.js'

/**
 * What `config show` checks: whatever any command would check before it touches a host, from the file alone.
 * The schema has run already (loadConfig). Throws the same UserError the refusing command would.
 */
export function checkEnvironment(loaded: LoadedConfig): {env: EnvironmentConfig; checked: string[]; notChecked: string[]} {
  const env = loaded.env
  const checked = ['schema']
  const notChecked: string[] = []
  let hosts: Host[] = []
  if (env.inventory.source === 'static') {
    hosts = staticHosts(env.inventory.hosts)
    assertUniqueNames(hosts, 'The static inventory', 'Give each host in inventory.hosts its own name.')
    checked.push('static inventory')
  } else {
    notChecked.push('the EC2 inventory (its names and addresses)')
  }
  const settings = deploySettings(env)
  let shown = env
  if (env.app) {
    // The app section's own keys first: the most precise message for a typo there.
    shown = {...env, app: validateAppSection(env.app, `${loaded.file}: environments.${loaded.environment}`)}
    const role = hosts.filter((h) => h.roles.includes(settings.role))
    // Every app host's rendered config when the inventory is in the file; else one stand-in host.
    checkAppConfig(loaded, role.length > 0 ? role : [{name: 'stand-in', address: '127.0.0.1', roles: [settings.role]}])
    checked.push(`the app's start-up checks on the config a deploy renders${role.length > 0 ? ` for ${role.length} host${role.length === 1 ? '' : 's'}` : ''}`)
  } else {
    notChecked.push('the app (this environment has no app section: `feedops deploy` refuses it)')
  }
  notChecked.push('what needs the hosts or the servers (reachability, URLs that answer, deploy.path within the home)')
  return {env: shown, checked, notChecked}
}
