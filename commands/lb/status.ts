import {FeedopsCommand} from '../../src/cli/base-command.js'
import type {StatusResult} from '../../src/lb/render.js'

export default class LbStatus extends FeedopsCommand<StatusResult> {
  static override description = `Show every NGINX node behind the load balancer: its deep health, the load balancer's view, the kept counts.

One line per node of the environment (inventory, role lb.role): the deep probe (HTTP GET of lb.probe.path,
/nginx-health, within lb.probe.timeoutMs), the load balancer's view (registered or not; InService,
OutOfService, Unknown or Draining, with the reason code and description), the consecutive pass and fail
counts kept by rotate, what the next pass would do, and the drain by hand (who, when, why). Targets the
load balancer lists that the inventory does not are shown, marked, and never touched. Read-only: takes no
lock and keeps no count.`

  static override examples = ['<%= config.bin %> lb status', '<%= config.bin %> lb status --json', '<%= config.bin %> lb status --env prod']

  async run(): Promise<StatusResult> {
    const {flags} = await this.parse(LbStatus)
    const loaded = this.loadConfig(flags)
    const {lbStatus} = await import('../../src/lb/status.js')
    const {renderStatus} = await import('../../src/lb/render.js')
    const result = await lbStatus(loaded.env, loaded.environment)
    if (!this.jsonEnabled()) process.stdout.write(renderStatus(result))
    return result
  }
}
