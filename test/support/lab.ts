/**
 * A small private lab for one test file: its own net octet (127.N.x.y, N from 20 to 250) and its
 * own temp dir, so test files run in parallel. Ask only for what the test needs:
 *
 *   const lab = await startTestLab({hosts: 3, postgres: 1})
 *   after(() => lab.stop())
 *
 * Net octets are claimed by an atomic mkdir of a slot folder under the temp dir; a slot whose
 * owner process died is reclaimed (its lab stopped first, by the pids its state.json records).
 */
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {labDown, labUp} from '../../src/lab/index.js'
import {labLayout, labPaths, type LabLayout} from '../../src/lab/layout.js'
import {isRunning, readProc} from '../../src/lab/process.js'
import {readState} from '../../src/lab/state.js'

export interface TestLab {
  dir: string
  net: number
  /** <dir>/feedops.yml, for `--config`. */
  configFile: string
  layout: LabLayout
  stop(): Promise<void>
}

export interface TestLabOptions {
  hosts?: number
  nginx?: number
  postgres?: number
  pgbouncer?: boolean
  /** Create the shard catalog and schemas (as `lab up` does for users). */
  shards?: boolean
  redis?: boolean
  memcached?: boolean
  cloud?: boolean
}

const FIRST_NET = 20
const LAST_NET = 250
const slotsDir = path.join(tmpdir(), 'feedops-lab-slots')

interface SlotOwner {
  pid: number
  startTime: number
  dir: string
}

export async function startTestLab(opts: TestLabOptions = {}): Promise<TestLab> {
  const hosts = opts.hosts ?? 0
  const nginx = opts.nginx ?? 0
  const postgres = opts.postgres ?? 0
  const dir = mkdtempSync(path.join(tmpdir(), 'feedops-lab-'))
  chmodSync(dir, 0o755) // Postgres runs as its own user and must reach its data dir
  const {net, slot} = await claimNet(dir)
  const lab: TestLab = {
    dir,
    net,
    configFile: labPaths.config(dir),
    layout: labLayout(net, hosts, postgres, nginx),
    stop: async () => {
      active.delete(lab)
      try {
        await labDown(dir)
      } finally {
        if (!process.env.FEEDOPS_KEEP_LAB) rmSync(dir, {recursive: true, force: true})
        rmSync(slot, {recursive: true, force: true})
      }
    },
  }
  active.add(lab)
  try {
    await labUp({
      dir,
      net,
      hosts,
      nginx,
      postgres,
      pgbouncer: opts.pgbouncer ?? false,
      shards: opts.shards ?? false,
      redis: opts.redis ?? false,
      memcached: opts.memcached ?? false,
      cloud: opts.cloud ?? false,
    })
  } catch (err) {
    await lab.stop().catch(() => {})
    throw err
  }
  return lab
}

/**
 * A free net octet and an empty temp dir without starting anything, for tests that drive
 * `feedops lab up` themselves; release() removes the dir and frees the net (stop the lab first).
 */
export async function reserveTestNet(): Promise<{net: number; dir: string; release(): void}> {
  const dir = mkdtempSync(path.join(tmpdir(), 'feedops-lab-'))
  chmodSync(dir, 0o755)
  const {net, slot} = await claimNet(dir)
  return {
    net,
    dir,
    release: () => {
      if (!process.env.FEEDOPS_KEEP_LAB) rmSync(dir, {recursive: true, force: true})
      rmSync(slot, {recursive: true, force: true})
    },
  }
}

async function claimNet(dir: string): Promise<{net: number; slot: string}> {
  mkdirSync(slotsDir, {recursive: true})
  const span = LAST_NET - FIRST_NET + 1
  const offset = process.pid % span // spreads parallel test files over the range
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < span; i++) {
      const net = FIRST_NET + ((offset + i) % span)
      const slot = path.join(slotsDir, String(net))
      if (pass === 1) await reclaimIfAbandoned(slot)
      try {
        mkdirSync(slot)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue
        throw err
      }
      const owner: SlotOwner = {pid: process.pid, startTime: readProc(process.pid)?.startTime ?? 0, dir}
      writeFileSync(path.join(slot, 'owner.json'), JSON.stringify(owner))
      return {net, slot}
    }
  }
  throw new Error(`No free lab net between ${FIRST_NET} and ${LAST_NET} (see ${slotsDir}).`)
}

/** A slot whose owner died: stop its lab (recorded pids only), remove its dir, free the slot. */
async function reclaimIfAbandoned(slot: string): Promise<void> {
  let owner: SlotOwner
  try {
    owner = JSON.parse(readFileSync(path.join(slot, 'owner.json'), 'utf8')) as SlotOwner
  } catch {
    // No owner file: being created right now, or left by a crash between mkdir and write.
    try {
      if (Date.now() - statSync(slot).mtimeMs < 60_000) return
    } catch {
      return
    }
    owner = {pid: 0, startTime: 0, dir: ''}
  }
  if (owner.pid && isRunning({pid: owner.pid, startTime: owner.startTime, match: []})) return
  const tomb = `${slot}.stale-${process.pid}-${Date.now()}`
  try {
    renameSync(slot, tomb) // only one reclaimer wins
  } catch {
    return
  }
  if (owner.dir) {
    await labDown(owner.dir).catch(() => {})
    rmSync(owner.dir, {recursive: true, force: true})
  }
  rmSync(tomb, {recursive: true, force: true})
}

// Safety net: a test process that exits without stop() still kills what its labs started.
const active = new Set<TestLab>()
process.once('exit', () => {
  for (const lab of active) {
    try {
      for (const r of readState(lab.dir)?.processes ?? []) {
        if (r.pid !== null && r.startTime !== null && isRunning({pid: r.pid, startTime: r.startTime, match: r.match})) {
          process.kill(r.pid, 'SIGKILL')
        }
      }
    } catch {
      // best effort
    }
  }
})
