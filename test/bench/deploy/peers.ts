/**
 * The deploy bench's peers, given the same release tarball, hosts, restart command and health check as
 * `feedops deploy`: the Ansible playbook (ansible-deploy.yml, serial batches of feedops's sizes) and the
 * Fabric 2 script (fabric-deploy.py, every host at once). Each returns its command line; the bench times it.
 */
import {writeFileSync} from 'node:fs'
import path from 'node:path'

import {repoRoot} from '../util.js'

export interface PeerJob {
  /** Working folder for the inventory and job files. */
  dir: string
  hosts: {address: string; deployPath: string}[]
  user: string
  port: number
  key: string
  knownHosts: string
  tarball: string
  release: string
  restart: string
  /** Links feedops makes inside each release folder (dest relative to it, src as the link reads). */
  sharedLinks: {src: string; dest: string}[]
  readyPort: number
  /** Host counts of the rolling batches (Ansible's `serial`). */
  batches: number[]
  timeoutSeconds: number
}

export type Command = [string, string[], NodeJS.ProcessEnv?]

const here = path.join(repoRoot, 'test/bench/deploy')

export function ansibleCommand(job: PeerJob): Command {
  const inventory = path.join(job.dir, 'ansible-inventory.ini')
  writeFileSync(
    inventory,
    '[app]\n' +
      job.hosts.map((h) => `${h.address} ansible_port=${job.port} ansible_user=${job.user} deploy_path=${h.deployPath}`).join('\n') +
      `\n[app:vars]\nansible_python_interpreter=/usr/bin/python3\nansible_ssh_private_key_file=${job.key}\n`,
  )
  const vars = path.join(job.dir, 'ansible-vars.json')
  writeFileSync(
    vars,
    JSON.stringify({
      tarball: job.tarball,
      release: job.release,
      restart: job.restart,
      shared_links: job.sharedLinks,
      batches: job.batches,
      ready_port: job.readyPort,
      ready_field: 'release',
      health_retries: job.timeoutSeconds,
    }),
  )
  return [
    'ansible-playbook',
    ['-i', inventory, '-f', String(job.hosts.length), path.join(here, 'ansible-deploy.yml'), '-e', `@${vars}`],
    {
      ANSIBLE_HOST_KEY_CHECKING: 'True',
      // Fresh connections, strict host keys, as the fan-out bench runs Ansible.
      ANSIBLE_SSH_ARGS: `-o ControlMaster=no -o UserKnownHostsFile=${job.knownHosts} -o StrictHostKeyChecking=yes`,
      ANSIBLE_LOCAL_TEMP: path.join(job.dir, 'ansible-tmp'),
    },
  ]
}

export function fabricCommand(job: PeerJob): Command {
  const file = path.join(job.dir, 'fabric-job.json')
  writeFileSync(
    file,
    JSON.stringify({
      hosts: job.hosts.map((h) => ({address: h.address, path: h.deployPath})),
      user: job.user,
      port: job.port,
      key: job.key,
      known_hosts: job.knownHosts,
      tarball: job.tarball,
      release: job.release,
      restart: job.restart,
      shared_links: job.sharedLinks,
      ready_port: job.readyPort,
      ready_field: 'release',
      timeout: job.timeoutSeconds,
    }),
  )
  // Debian's Fabric lives in /usr/bin/python3's modules, not in the python3 first on PATH.
  return ['/usr/bin/python3', [path.join(here, 'fabric-deploy.py'), file]]
}
