import path from 'node:path/posix'

/**
 * Production hosts run the app under systemd. The unit starts whatever `current` points at, from its
 * real path, on the runtime that release links (current/node), so a deploy or rollback is `systemctl
 * restart` after the switch. Each release has its own config, shared/config/<id>/ (feedops.json and app.env
 * with the secret): mode 0640, owned by the deployer, in deploy.configGroup, which the unit names in
 * SupplementaryGroups so the service user can read it and nobody else.
 * The app's port belongs to feed.socket (socket activation), not to the process: it stays open through a
 * restart, and connections that arrive meanwhile wait in its queue for the new process instead of being
 * refused or reset.
 */
export const SERVICE = 'feed'
export const SERVICE_USER = 'feed'

export function systemdUnit(opts: {root: string; user?: string; stopTimeoutS?: number; configGroup?: string}): string {
  const {root} = opts
  const current = path.join(root, 'current')
  const shared = path.join(root, 'shared')
  return `# Written by \`feedops play provision\`. The deploy switches ${current} and restarts this unit.
[Unit]
Description=feed app (the feedops release ${current} points at)
After=network-online.target ${SERVICE}.socket
Wants=network-online.target
Requires=${SERVICE}.socket

[Service]
Type=simple
User=${opts.user ?? SERVICE_USER}
WorkingDirectory=${current}
${opts.configGroup ? `# The release's config (shared/config/<id>/, 0640) is readable through this group.\nSupplementaryGroups=${opts.configGroup}\n` : ''}# From the release's real path, not through the link a deploy moves (pm.ts does the same), with that release's
# own config, shared/config/<id>/ (its app.env read by the shell, as the service user); $$ is a literal $.
ExecStart=/bin/sh -c 'r=$$(readlink -f ${current}) && c=${shared}/config/$\${r##*/} && set -a && . "$$c/app.env" && set +a && exec "$$r/node" "$$r/app.mjs" --config "$$c/feedops.json"'
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

/** The app's listening socket, held by systemd across restarts; the app takes it as fd 3 (app/server.ts). */
export function systemdSocket(opts: {address: string; port: number}): string {
  const address = opts.address.includes(':') ? `[${opts.address}]` : opts.address
  return `# Written by \`feedops play provision\`. Holds the feed app's port while ${SERVICE}.service restarts.
[Unit]
Description=feed app's listening socket

[Socket]
ListenStream=${address}:${opts.port}
Backlog=4096
NoDelay=true

[Install]
WantedBy=sockets.target
`
}

/** Lets the deploying account restart and stop the unit, and nothing else, without a password. */
export function sudoersRule(deployer: string): string {
  return `# Written by \`feedops play provision\`.\n${deployer} ALL=(root) NOPASSWD: /usr/bin/systemctl restart ${SERVICE}, /usr/bin/systemctl stop ${SERVICE}\n`
}
