import type {EnvironmentConfig} from '../src/config/schema.js'
import {UserError} from '../src/errors.js'
import {loadInventory, type Host} from '../src/inventory/index.js'
import {APP_PORT, NGINX_BIN, renderUpstreams, type UpstreamServer} from '../src/lb/nginx-conf.js'
import {definePlaybook} from '../src/playbook/define.js'
import type {RemoteStep} from '../src/ssh/command.js'

/**
 * `feedops play nginx-upstreams`: point every NGINX node at the app hosts the inventory has now. The
 * upstream block is rendered from the hosts with role app (src/lb/nginx-conf.ts, the renderer the lab
 * uses too), written beside the node's nginx.conf in ~/nginx, checked with `nginx -t` (the old file is
 * put back if the check fails), and nginx reloads on SIGHUP to the pid in ~/nginx/nginx.pid: new workers
 * take new connections while the old ones finish theirs, so no request is dropped.
 */

/** The app hosts an environment's inventory lists (loaded once per run, whatever the number of nodes). */
const appServers = new WeakMap<EnvironmentConfig, Promise<UpstreamServer[]>>()

export function upstreamServers(hosts: readonly Host[], config: EnvironmentConfig): UpstreamServer[] {
  const port = typeof config.app?.port === 'number' ? config.app.port : APP_PORT
  return hosts.filter((h) => h.roles.includes('app')).map((h) => ({address: h.address, port}))
}

function serversFor(config: EnvironmentConfig): Promise<UpstreamServer[]> {
  let servers = appServers.get(config)
  if (!servers) {
    servers = loadInventory(config).then((hosts) => upstreamServers(hosts, config))
    appServers.set(config, servers)
  }
  return servers
}

/** What runs on a node, as data; every line starts in the node's nginx folder. */
const inNginxDir = (script: string): RemoteStep => ({script: `cd "$HOME/nginx" || exit 1; ${script}`})

export const nodeSteps = {
  /** Reads the new file on stdin; prints "changed" or "same". */
  upload: inNginxDir('cat > upstreams.conf.new && if cmp -s upstreams.conf.new upstreams.conf; then echo same; else echo changed; fi'),
  /** Swaps the new file in and checks the whole config; on failure the previous file comes back. */
  check: inNginxDir(
    'cp -p upstreams.conf upstreams.conf.prev && mv upstreams.conf.new upstreams.conf && ' +
      `{ ${NGINX_BIN} -t -q -p "$PWD" -c "$PWD/nginx.conf" -e "$PWD/logs/error.log" || { mv upstreams.conf.prev upstreams.conf; exit 1; }; }`,
  ),
  /** A graceful reload of the running master. */
  reload: inNginxDir('test -s nginx.pid || { echo "nginx is not running (no nginx.pid)" >&2; exit 1; }; kill -HUP "$(cat nginx.pid)"'),
} as const

export default definePlaybook({
  name: 'nginx-upstreams',
  description: 'Render the NGINX nodes\' upstream block from the inventory\'s app hosts, check it with nginx -t, and reload nginx.',
  roles: ['nginx'],
  steps: [
    {
      title: 'upload',
      run: async (h) => {
        const servers = await serversFor(h.config)
        if (servers.length === 0) {
          throw new UserError('The inventory has no host with role app to send traffic to.', {fix: 'Add app hosts, then run this again.'})
        }
        const out = await h.run(nodeSteps.upload, {stdin: renderUpstreams(servers)})
        return {servers: servers.length, changed: out.stdout.trim() === 'changed'}
      },
    },
    {title: 'nginx -t', run: async (h) => void (await h.run(nodeSteps.check))},
    {title: 'reload', run: async (h) => void (await h.run(nodeSteps.reload))},
  ],
  report: (values) => {
    const upload = values.upload as {servers: number; changed: boolean}
    return {'APP HOSTS': String(upload.servers), UPSTREAMS: upload.changed ? 'changed, reloaded' : 'unchanged, reloaded'}
  },
})
