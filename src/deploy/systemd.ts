import path from 'node:path/posix'

/**
 * Production hosts run the app under systemd. The unit starts whatever `current` points at, on the
 * runtime that release links (current/node), so a deploy or rollback is `systemctl restart` after the
 * switch; systemd reads shared/app.env (mode 0600, the deployer's) before it drops to the service user.
 */
export const SERVICE = 'feed'
export const SERVICE_USER = 'feed'

export function systemdUnit(opts: {root: string; user?: string; stopTimeoutS?: number}): string {
  const {root} = opts
  const current = path.join(root, 'current')
  const shared = path.join(root, 'shared')
  return `# Written by \`feedops play provision\`. The deploy switches ${current} and restarts this unit.
[Unit]
Description=feed app (the feedops release ${current} points at)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${opts.user ?? SERVICE_USER}
WorkingDirectory=${current}
EnvironmentFile=${shared}/app.env
ExecStart=${current}/node ${current}/app.mjs --config ${shared}/feedops.yml
# The app drains on SIGTERM (readyz 503, in-flight requests finish), then exits.
KillSignal=SIGTERM
TimeoutStopSec=${opts.stopTimeoutS ?? 15}
Restart=on-failure
RestartSec=1
StandardOutput=append:${shared}/log/app.log
StandardError=inherit
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`
}

/** Lets the deploying account restart and stop the unit, and nothing else, without a password. */
export function sudoersRule(deployer: string): string {
  return `# Written by \`feedops play provision\`.\n${deployer} ALL=(root) NOPASSWD: /usr/bin/systemctl restart ${SERVICE}, /usr/bin/systemctl stop ${SERVICE}\n`
}
