import {Flags} from '@oclif/core'

import {FeedopsCommand} from '../src/cli/base-command.js'
import {loadInventory, selectHosts, type Host} from '../src/inventory/index.js'
import {hostsTable} from '../src/inventory/render.js'

export default class Hosts extends FeedopsCommand<Host[]> {
  static override description =
    'List the hosts of the environment (static list or EC2 instances found by tag), optionally narrowed by role or name.'

  static override examples = [
    '<%= config.bin %> hosts',
    '<%= config.bin %> hosts --role app',
    '<%= config.bin %> hosts --hosts app1,app2 --json',
    '<%= config.bin %> hosts --env prod --role db',
  ]

  static override flags = {
    role: Flags.string({char: 'r', description: 'Only hosts with this role.'}),
    hosts: Flags.string({char: 'H', description: 'Only these hosts (comma-separated names or addresses).'}),
  }

  async run(): Promise<Host[]> {
    const {flags} = await this.parse(Hosts)
    const {env} = this.loadConfig(flags)
    const names = flags.hosts?.split(',').map((s) => s.trim()).filter((s) => s !== '')
    const hosts = selectHosts(await loadInventory(env), {role: flags.role, hosts: names})
    this.log(hostsTable(hosts))
    this.log(`${hosts.length} host${hosts.length === 1 ? '' : 's'}`)
    return hosts
  }
}
