import {FeedopsCommand} from '../src/cli/base-command.js'
import {hostSelection, selectionFlags} from '../src/cli/host-flags.js'
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

  static override flags = selectionFlags

  async run(): Promise<Host[]> {
    const {flags} = await this.parse(Hosts)
    const selection = hostSelection(flags)
    const {env} = this.loadConfig(flags)
    const hosts = selectHosts(await loadInventory(env), selection)
    this.log(hostsTable(hosts))
    this.log(`${hosts.length} host${hosts.length === 1 ? '' : 's'}`)
    return hosts
  }
}
