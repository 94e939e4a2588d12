import path from 'node:path/posix'

import {RESTART_POLICY} from './restart-policy.js'

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
# A crash loop ends: past ${RESTART_POLICY.burst} restarts within ${RESTART_POLICY.intervalMs / 1000} s the unit fails (the release's pm.mjs does the same).
StartLimitBurst=${RESTART_POLICY.burst}
StartLimitIntervalSec=${RESTART_POLICY.intervalMs / 1000}

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
# Started again after a failed exit, sooner the first time, later each time after (systemd >= 254 reads the
# steps; an older one waits RestartSec each time). Each restart is a new pid, which a deploy's re-checks see.
Restart=on-failure
RestartSec=${RESTART_POLICY.firstDelayMs}ms
RestartSteps=${Math.round(Math.log2(RESTART_POLICY.maxDelayMs / RESTART_POLICY.firstDelayMs))}
RestartMaxDelaySec=${RESTART_POLICY.maxDelayMs / 1000}
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
