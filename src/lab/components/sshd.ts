import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {labPaths, sshHosts} from '../layout.js'
import {ensureEd25519Key, knownHostsLine} from '../keys.js'
import {findBinary} from '../packages.js'
import type {DesiredProcess, LabComponent, LabContext} from './types.js'

/**
 * Lab hosts (app hosts, and NGINX nodes on 127.N.2.K): one OpenSSH sshd per host on 127.N.1.K:2222
 * with its own host key and its own folder standing for the host's disk. One client key (id_ed25519) logs in to all of them; known_hosts
 * lists every host key, so clients verify strictly.
 */

const SSHD = '/usr/sbin/sshd'

export function sshdConfigPath(dir: string, host: string): string {
  return `${labPaths.hostDir(dir, host)}/sshd_config`
}

export function hostKeyPath(dir: string, host: string): string {
  return `${labPaths.hostDir(dir, host)}/ssh_host_ed25519_key`
}

function sshdConfig(dir: string, host: {name: string; address: string; port: number}): string {
  const root = labPaths.hostRoot(dir, host.name)
  return [
    `# Lab host ${host.name}; written by \`feedops lab up\` (rewritten on every up).`,
    `ListenAddress ${host.address}:${host.port}`,
    `HostKey ${hostKeyPath(dir, host.name)}`,
    `AuthorizedKeysFile ${labPaths.authorizedKeys(dir)}`,
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'StrictModes no',
    'UsePAM no',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    'X11Forwarding no',
    // Parallel runners open many connections at once; the default 10:30:100 drops some.
    'MaxStartups 200:30:400',
    'MaxSessions 100',
    `SetEnv HOME=${root} FEEDOPS_HOST=${host.name} FEEDOPS_HOST_ROOT=${root}`,
    'Subsystem sftp internal-sftp',
    'PidFile none',
    '',
  ].join('\n')
}

/**
 * The lab's app hosts share this machine's network stack, so the setting a provisioned host gets (playbook
 * provision) is made here: a restarting app's queued connections move to the new process instead of being
 * reset (src/deploy/pm.ts restart). Only root can; others get a note.
 */
export const MIGRATE_REQ = '/proc/sys/net/ipv4/tcp_migrate_req'

function allowListenerHandover(ctx: LabContext): void {
  let value: string
  try {
    value = readFileSync(MIGRATE_REQ, 'utf8').trim()
  } catch {
    return // a kernel before 5.14: restarts still overlap, a few queued connections may be reset
  }
  if (value === '1') return
  if (ctx.isRoot) writeFileSync(MIGRATE_REQ, '1\n')
  else ctx.progress(`Note: ${MIGRATE_REQ} is ${value} and only root can set it; an app host restarting under load may reset a few new connections.`)
}

export const sshdComponent: LabComponent = {
  id: 'sshd',
  title: 'sshd hosts',

  packages: (ctx) => (sshHosts(ctx.layout).length > 0 ? [{package: 'openssh-server', binary: SSHD}] : []),

  desired: (ctx) =>
    sshHosts(ctx.layout).map((h): DesiredProcess => {
      const config = sshdConfigPath(ctx.dir, h.name)
      const logFile = labPaths.log(ctx.dir, h.name)
      return {
        component: 'sshd',
        name: h.name,
        address: h.address,
        port: h.port,
        argv: [findBinary(SSHD) ?? SSHD, '-D', '-f', config, '-E', logFile],
        // sshd rewrites its title to "sshd: <argv> [listener] …"; the config path stays in it.
        match: [`-f ${config} `],
        logFile,
      }
    }),

  async prepare(ctx: LabContext) {
    // The client key and known_hosts exist even with no hosts, so the lab config is always valid.
    const clientPub = ensureEd25519Key(labPaths.clientKey(ctx.dir), `feedops-lab-client`)
    writeFileSync(labPaths.authorizedKeys(ctx.dir), `${clientPub}\n`)
    const hosts = sshHosts(ctx.layout)
    if (hosts.length > 0 && ctx.isRoot) mkdirSync('/run/sshd', {recursive: true, mode: 0o755})
    if (hosts.length > 0) allowListenerHandover(ctx)
    const lines = hosts.map((h) => {
      mkdirSync(labPaths.hostRoot(ctx.dir, h.name), {recursive: true})
      const pub = ensureEd25519Key(hostKeyPath(ctx.dir, h.name), `${h.name}-host-key`)
      writeFileSync(sshdConfigPath(ctx.dir, h.name), sshdConfig(ctx.dir, h))
      return knownHostsLine(h.address, h.port, pub)
    })
    writeFileSync(labPaths.knownHosts(ctx.dir), lines.map((l) => `${l}\n`).join(''))
  },
}
