/**
 * Fan-out benchmark: the same command (`uname -a`) on 12 and 48 lab hosts with feedops, parallel-ssh,
 * Fabric 2 and Ansible, in one run, alternating tools round by round; then a 5-step playbook against a single
 * `run`. Prints medians and ratios, writes test/bench/results/ssh-fanout.json.
 *
 *   npm run build && node dist/test/bench/ssh-fanout.js [--rounds 5]
 *
 * Every tool verifies host keys against the lab's known_hosts and rejects unknown ones, uses the same key
 * and opens fresh connections each round (Ansible's ControlPersist is off so no round reuses the last one's).
 * feedops runs twice: as the lab is configured (hosts found through the EC2 endpoint with the AWS SDK) and
 * with the hosts listed in its config, the same input the other tools get.
 */
import {execFile, spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {parseArgs, promisify} from 'node:util'

import {parse, stringify} from 'yaml'

import {startTestLab, type TestLab} from '../support/lab.js'
import {median, repoRoot, table} from './util.js'

const run = promisify(execFile)
const {values} = parseArgs({options: {rounds: {type: 'string', default: '5'}}})
const rounds = Number(values.rounds)
const sizes = [12, 48]
const feedops = path.join(repoRoot, 'bin/run.js')

interface Tool {
  name: string
  command(lab: TestLab, hosts: string[]): [string, string[], NodeJS.ProcessEnv?]
}

function addresses(lab: TestLab, n: number): string[] {
  return lab.layout.hosts.slice(0, n).map((h) => h.address)
}

function sshOpts(lab: TestLab): string[] {
  return ['-i', path.join(lab.dir, 'id_ed25519'), '-o', `UserKnownHostsFile=${path.join(lab.dir, 'known_hosts')}`,
    '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-p', '2222']
}

/**
 * The lab config with the hosts listed in it (inventory.source: static), so feedops starts from the same
 * input as parallel-ssh and Fabric: a list of hosts, no EC2 lookup.
 */
function staticConfig(lab: TestLab): string {
  const file = path.join(lab.dir, 'feedops-static.yml')
  if (existsSync(file)) return file // written once per lab, before the first round
  const config = parse(readFileSync(lab.configFile, 'utf8'))
  const env = config.environments.lab
  env.inventory = {source: 'static', hosts: lab.layout.hosts.map((h) => ({name: h.name, address: h.address, roles: ['app']}))}
  writeFileSync(file, stringify(config))
  return file
}

function feedopsRun(config: string, hosts: string[]): [string, string[]] {
  return ['node', [feedops, 'run', '--config', config, '--hosts', hosts.join(','), '--concurrency', String(hosts.length), '--', 'uname', '-a']]
}

const tools: Tool[] = [
  {name: 'feedops', command: (lab, hosts) => feedopsRun(lab.configFile, hosts)},
  {name: 'feedops (static list)', command: (lab, hosts) => feedopsRun(staticConfig(lab), hosts)},
  {
    name: 'parallel-ssh',
    command: (lab, hosts) => {
      const file = path.join(lab.dir, `pssh-${hosts.length}.txt`)
      writeFileSync(file, hosts.map((h) => `root@${h}:2222`).join('\n') + '\n')
      return ['parallel-ssh', ['-h', file, '-p', String(hosts.length), '-t', '30', '-x', sshOpts(lab).join(' '), 'uname', '-a']]
    },
  },
  {
    name: 'fabric',
    command: (lab, hosts) => {
      const script = [
        'import sys',
        'from fabric import ThreadingGroup',
        'from paramiko import RejectPolicy',
        `g = ThreadingGroup(*sys.argv[1].split(','), user='root', port=2222, connect_kwargs={'key_filename': '${path.join(lab.dir, 'id_ed25519')}', 'look_for_keys': False, 'allow_agent': False})`,
        'for c in g:',
        `    c.client.load_host_keys('${path.join(lab.dir, 'known_hosts')}')`,
        '    c.client.set_missing_host_key_policy(RejectPolicy())',
        "g.run('uname -a', hide=True)",
      ].join('\n')
      // Debian's Fabric lives in /usr/bin/python3's modules, not in the python3 first on PATH.
      return ['/usr/bin/python3', ['-c', script, hosts.join(',')]]
    },
  },
  {
    name: 'ansible',
    command: (lab, hosts) => {
      const inv = path.join(lab.dir, `ansible-${hosts.length}.ini`)
      writeFileSync(inv, '[lab]\n' + hosts.map((h) => `${h} ansible_port=2222 ansible_user=root`).join('\n') +
        `\n[lab:vars]\nansible_python_interpreter=/usr/bin/python3\nansible_ssh_private_key_file=${path.join(lab.dir, 'id_ed25519')}\n`)
      return ['ansible', ['all', '-i', inv, '-f', String(hosts.length), '-m', 'command', '-a', 'uname -a'], {
        ANSIBLE_HOST_KEY_CHECKING: 'True',
        ANSIBLE_SSH_ARGS: `-o ControlMaster=no -o UserKnownHostsFile=${path.join(lab.dir, 'known_hosts')} -o StrictHostKeyChecking=yes`,
        ANSIBLE_LOCAL_TEMP: path.join(lab.dir, 'ansible-tmp'),
      }]
    },
  },
]

async function time(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  const start = process.hrtime.bigint()
  try {
    await run(cmd, args, {env: {...process.env, ...env}, maxBuffer: 64 << 20, timeout: 300_000})
  } catch (err) {
    const e = err as {stderr?: string; stdout?: string; message: string}
    throw new Error(`${cmd} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`.slice(0, 4000))
  }
  return Number(process.hrtime.bigint() - start) / 1e6
}

// A peer that is not installed is left out (and said so), rather than failing the whole run.
const installed = (cmd: string) => spawnSync(cmd, ['--version'], {stdio: 'ignore'}).error === undefined
for (const [name, cmd] of [['ansible', 'ansible'], ['parallel-ssh', 'parallel-ssh']] as const) {
  if (!installed(cmd)) {
    process.stderr.write(`${name} is not installed: left out of this run\n`)
    tools.splice(tools.findIndex((t) => t.name === name), 1)
  }
}
const has = (name: string) => tools.some((t) => t.name === name)

const lab = await startTestLab({hosts: 48, cloud: true})
try {
  const samples: Record<string, number[]> = {}
  for (let r = 0; r < rounds; r++) {
    for (const size of sizes) {
      const hosts = addresses(lab, size)
      // Rotate the order each round so no tool always runs right after the same neighbour.
      const order = tools.map((_, i) => tools[(i + r) % tools.length]!)
      for (const tool of order) {
        const [cmd, args, env] = tool.command(lab, hosts)
        ;(samples[`${tool.name}@${size}`] ??= []).push(await time(cmd, args, env))
      }
    }
    const hosts48 = lab.layout.hosts.map((h) => h.name).join(',')
    ;(samples['feedops-play-5-steps@48'] ??= []).push(
      await time('node', [feedops, 'play', 'check', '--config', lab.configFile, '--hosts', hosts48]),
    )
    process.stderr.write(`round ${r + 1}/${rounds} done\n`)
  }

  const med = (k: string) => median(samples[k]!)
  const rows: string[][] = []
  const results: Record<string, unknown> = {rounds, medians: {} as Record<string, number>, ratios: {} as Record<string, number>}
  for (const size of sizes) {
    const f = med(`feedops@${size}`)
    for (const tool of tools) {
      const m = med(`${tool.name}@${size}`)
      ;(results.medians as Record<string, number>)[`${tool.name}@${size}`] = m
      rows.push([String(size), tool.name, m.toFixed(0), (f / m).toFixed(2)])
    }
  }
  const play = med('feedops-play-5-steps@48')
  const single = med('feedops@48')
  rows.push(['48', 'feedops play (5 steps)', play.toFixed(0), (play / single).toFixed(2) + ' × run'])
  const ratios = results.ratios as Record<string, number>
  const peers48 = Math.min(...['parallel-ssh@48', 'fabric@48'].filter((k) => samples[k]).map(med))
  ratios.feedopsVsFasterOfPsshFabric48 = single / peers48
  ratios.feedopsStaticVsFasterOfPsshFabric48 = med('feedops (static list)@48') / peers48
  if (has('ansible')) ratios.feedopsVsAnsible48 = single / med('ansible@48')
  ratios.play5VsRun48 = play / single
  ratios.feedopsVsFabric12 = med('feedops@12') / med('fabric@12')
  ratios.feedopsVsFabric48 = single / med('fabric@48')
  if (has('parallel-ssh')) ratios.feedopsVsPssh48 = single / med('parallel-ssh@48')
  ;(results.medians as Record<string, number>)['feedops-play-5-steps@48'] = play

  console.log(table(['hosts', 'tool', 'median ms', 'feedops ÷ tool'], rows))
  console.log(`\nat 48 hosts: feedops ÷ min(pssh, fabric) = ${ratios.feedopsVsFasterOfPsshFabric48!.toFixed(2)} (goal ≤ 1.00; ` +
    `${ratios.feedopsStaticVsFasterOfPsshFabric48!.toFixed(2)} with the static list), ` +
    (has('ansible') ? `feedops ÷ ansible = ${ratios.feedopsVsAnsible48!.toFixed(3)} (goal ≤ 0.10), ` : '') +
    `play ÷ run = ${ratios.play5VsRun48!.toFixed(2)} (goal ≤ 1.2)`)
  console.log(`feedops (EC2 inventory) ÷ fabric: ${ratios.feedopsVsFabric12!.toFixed(2)} at 12 hosts, ${ratios.feedopsVsFabric48!.toFixed(2)} at 48 (goal ≤ 0.8)` +
    (has('parallel-ssh') ? `; ÷ parallel-ssh at 48: ${ratios.feedopsVsPssh48!.toFixed(2)} (goal ≤ 0.5)` : ''))
  const out = path.join(repoRoot, 'test/bench/results')
  mkdirSync(out, {recursive: true})
  writeFileSync(path.join(out, 'ssh-fanout.json'), JSON.stringify({...results, samples}, null, 2) + '\n')
} finally {
  await lab.stop()
}
