/**
 * CLI start-up benchmark: `feedops --version` and `feedops hosts` (EC2 inventory from the lab endpoint) beside
 * `python3 -c 'import fabric'` (what Fabric starts from before it opens a connection) and `node -e 0` (Node's
 * own floor), with hyperfine, in one run, round by round; and the same two commands unbundled
 * (FEEDOPS_BUNDLE=0: dist/commands as oclif loads them, as before the bundle). Prints medians and ratios,
 * writes test/bench/results/start.json.
 *
 *   npm run build && node dist/test/bench/start.js [--rounds 5] [--runs 5]
 *
 * Each round runs every command `--runs` times after one warm-up (hyperfine -N: no shell), so every
 * command's own code cache exists before timing; the figure of a round is its median, the figure of the run
 * the median over rounds. Ratios are taken within a round, so the machine's load (shared, noisy) moves both
 * sides alike.
 */
import {execFileSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {loadavg, tmpdir} from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

import {startTestLab} from '../support/lab.js'
import {median, repoRoot, table} from './util.js'

const {values} = parseArgs({options: {rounds: {type: 'string', default: '5'}, runs: {type: 'string', default: '5'}}})
const rounds = Number(values.rounds)
const runs = Number(values.runs)
const feedops = path.join(repoRoot, 'bin/run.js')

interface Timed {
  name: string
  command: string
}

interface HyperfineResult {
  command: string
  times: number[]
  user: number
  system: number
}

const lab = await startTestLab({hosts: 12, cloud: true})
const work = mkdtempSync(path.join(tmpdir(), 'feedops-bench-start-'))
const commands: Timed[] = [
  {name: 'feedops --version', command: `node ${feedops} --version`},
  {name: 'feedops hosts (EC2)', command: `node ${feedops} hosts --config ${lab.configFile}`},
  {name: "python3 -c 'import fabric'", command: "/usr/bin/python3 -c 'import fabric'"},
  {name: 'node -e 0', command: 'node -e 0'},
  {name: 'feedops --version, unbundled', command: `env FEEDOPS_BUNDLE=0 node ${feedops} --version`},
  {name: 'feedops hosts (EC2), unbundled', command: `env FEEDOPS_BUNDLE=0 node ${feedops} hosts --config ${lab.configFile}`},
]
const load: number[] = [loadavg()[0]!]
try {
  const wall: Record<string, number[]> = {}
  const cpu: Record<string, number[]> = {}
  const ratios: Record<string, number[]> = {}
  for (let r = 0; r < rounds; r++) {
    const out = path.join(work, `round-${r}.json`)
    execFileSync('hyperfine', ['-N', '--warmup', '1', '--runs', String(runs), '--export-json', out, ...commands.map((c) => c.command)], {stdio: ['ignore', 'ignore', 'inherit']})
    const results = (JSON.parse(readFileSync(out, 'utf8')) as {results: HyperfineResult[]}).results
    const byName = new Map(commands.map((c, i) => [c.name, results[i]!]))
    const ms = (name: string) => median(byName.get(name)!.times) * 1000
    for (const c of commands) {
      ;(wall[c.name] ??= []).push(ms(c.name))
      const res = byName.get(c.name)!
      ;(cpu[c.name] ??= []).push((res.user + res.system) * 1000)
    }
    const fabric = ms("python3 -c 'import fabric'")
    for (const c of commands) (ratios[c.name] ??= []).push(ms(c.name) / fabric)
    load.push(loadavg()[0]!)
    process.stderr.write(`round ${r + 1}/${rounds} done (load ${loadavg()[0]!.toFixed(1)})\n`)
  }
  const rows = commands.map((c) => [c.name, median(wall[c.name]!).toFixed(0), median(cpu[c.name]!).toFixed(0), median(ratios[c.name]!).toFixed(2)])
  console.log(table(['command', 'wall ms (median)', 'CPU ms (mean)', '÷ import fabric'], rows))
  console.log(`\nload average (1 min) during the run: ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)}; goals on a quiet machine: --version ≤ 120 ms, hosts ≤ 250 ms`)
  const results = path.join(repoRoot, 'test/bench/results')
  mkdirSync(results, {recursive: true})
  writeFileSync(path.join(results, 'start.json'), JSON.stringify({rounds, runs, load, wall, cpu, ratiosToImportFabric: ratios}, null, 2) + '\n')
} finally {
  await lab.stop()
  rmSync(work, {recursive: true, force: true})
}
