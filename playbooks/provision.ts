import {deploySettings} from '../src/deploy/run.js'
import {SERVICE, SERVICE_USER, sudoersRule, systemdSocket, systemdUnit} from '../src/deploy/systemd.js'
import {APP_PORT} from '../src/lb/nginx-conf.js'
import {definePlaybook} from '../src/playbook/define.js'

/**
 * `feedops play provision`: makes a fresh Ubuntu host ready for `feedops deploy` under systemd. It needs
 * no Node (each release brings its runtime): the service user, the release layout at deploy.path owned by
 * the account that deploys (the SSH user), the feed.service unit, and a sudoers rule that lets that
 * account restart the unit. Set `deploy.restart: sudo -n systemctl restart feed` for such hosts. The app's
 * port is held by feed.socket, so a restart refuses and resets no connection.
 * Safe to run again.
 */
export default definePlaybook({
  name: 'provision',
  description: 'Prepare a fresh Ubuntu host for deploys under systemd (service user, release folders, feed.service, sudo rule).',
  roles: ['app'],
  steps: [
    {
      title: 'systemd',
      run: async (h) => {
        const path = deploySettings(h.config).path
        if (!path.startsWith('/')) throw new Error(`deploy.path is ${path}; systemd hosts need an absolute path such as /srv/feed`)
        const r = await h.run('[ -d /run/systemd/system ] && command -v systemctl', {allowFailure: true})
        if (!r.ok) throw new Error('this host does not run systemd; use the process manager carried in each release (the default deploy.restart)')
        return path
      },
    },
    {
      title: 'service user',
      run: async (h) => {
        await h.sudo(`id -u ${SERVICE_USER} >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin ${SERVICE_USER}`)
        return SERVICE_USER
      },
    },
    {
      title: 'folders',
      run: async (h) => {
        const root = deploySettings(h.config).path
        const me = (await h.run(['id', '-un'])).stdout.trim()
        const dirs = ['', '/releases', '/runtimes', '/shared', '/shared/log', '/tmp'].map((d) => root + d)
        await h.sudo(['install', '-d', '-o', me, '-g', me, '-m', '0755', ...dirs])
        return me
      },
    },
    {
      title: 'unit',
      run: async (h) => {
        const s = deploySettings(h.config)
        if (!s.configGroup) throw new Error(`deploy.configGroup is not set; under systemd the app (user ${SERVICE_USER}) reads its config through that group: set it to ${SERVICE_USER}`)
        const me = (await h.run(['id', '-un'])).stdout.trim()
        await h.sudo(['sh', '-c', 'getent group "$1" >/dev/null || groupadd --system "$1"; usermod -aG "$1" "$2"; usermod -aG "$1" "$3"', 'sh', s.configGroup, SERVICE_USER, me])
        await h.sudo(['tee', `/etc/systemd/system/${SERVICE}.service`], {stdin: systemdUnit({root: s.path, stopTimeoutS: s.stopTimeout, configGroup: s.configGroup})})
        const port = typeof h.config.app?.port === 'number' ? h.config.app.port : APP_PORT
        await h.sudo(['tee', `/etc/systemd/system/${SERVICE}.socket`], {stdin: systemdSocket({address: h.host.address, port})})
        await h.sudo(['sh', '-c', 'umask 337 && cat > /etc/sudoers.d/feed-deploy.tmp && visudo -cf /etc/sudoers.d/feed-deploy.tmp && mv /etc/sudoers.d/feed-deploy.tmp /etc/sudoers.d/feed-deploy'], {
          stdin: sudoersRule(me),
        })
        await h.sudo(['systemctl', 'daemon-reload'])
        await h.sudo(['systemctl', 'enable', '--now', `${SERVICE}.socket`])
        await h.sudo(['systemctl', 'enable', SERVICE])
        return `${SERVICE}.socket, ${SERVICE}.service`
      },
    },
    {
      title: 'sysctl',
      // A restart whose new process shares the port (SO_REUSEPORT) hands the old one's queued connections over.
      run: async (h) => {
        await h.sudo(['sh', '-c', 'printf "net.ipv4.tcp_migrate_req = 1\\n" > /etc/sysctl.d/60-feed.conf && sysctl -q -p /etc/sysctl.d/60-feed.conf'])
        return 'tcp_migrate_req=1'
      },
    },
  ],
  report: (v) => ({path: String(v.systemd), user: String(v['service user']), deployer: String(v.folders), unit: String(v.unit), sysctl: String(v.sysctl)}),
})
