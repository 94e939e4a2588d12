/**
 * A small private lab for one test file: its own net octet (127.N.x.y, N from 20 to 250) and its
 * own temp dir, so test files run in parallel. Ask only for what the test needs:
 *
 *   const lab = await startTestLab({hosts: 3, postgres: 1})
 *   after(() => lab.stop())
 *
 * Net octets are claimed by an atomic mkdir of a slot folder under the temp dir; a slot whose
 * owner process died is reclaimed (its lab stopped first, by the pids its state.json records). Nets
 * something listens on are skipped, and a lab whose port is taken anyway moves to the next net.
 */
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {endianness, tmpdir} from 'node:os'
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
  let lab: TestLab | undefined
  await onFreeNet(async (net, dir, slot) => {
    lab = {
      dir,
      net,
      configFile: labPaths.config(dir),
      layout: labLayout(net, hosts, postgres, nginx),
      stop: async () => {
        active.delete(lab!)
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
  })
  return lab!
}

/** What labUp says when one of the net's ports is taken by a process it did not start. */
const PORT_TAKEN = /already in use by a process this lab did not start/

/**
 * Claims a free net with a fresh temp dir and runs `up` on it. When `up` fails because a port of that
 * net turned out to be taken (something started listening after the claim), `up` is expected to have
 * released the net and dir; the next free net is tried, a few times at most.
 */
export async function onFreeNet(up: (net: number, dir: string, slot: string) => Promise<void>, attempts = 5): Promise<number> {
  const skip = new Set<number>()
  for (let attempt = 1; ; attempt++) {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-lab-'))
    chmodSync(dir, 0o755) // Postgres runs as its own user and must reach its data dir
    const {net, slot} = await claimNet(dir, skip)
    try {
      await up(net, dir, slot)
      return net
    } catch (err) {
      if (attempt >= attempts || !PORT_TAKEN.test(err instanceof Error ? err.message : String(err))) throw err
      skip.add(net)
    }
  }
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

/**
 * A net octet whose slot this process now holds. Skips nets another test file holds (slot folders),
 * nets in `skip`, and nets something already listens on (a lab started by hand, any other server on
 * 127.N.x.y), which would make labUp fail on a taken port.
 */
export async function claimNet(dir: string, skip: ReadonlySet<number> = new Set()): Promise<{net: number; slot: string}> {
  mkdirSync(slotsDir, {recursive: true})
  const span = LAST_NET - FIRST_NET + 1
  const offset = process.pid % span // spreads parallel test files over the range
  for (let pass = 0; pass < 2; pass++) {
    const busy = listeningNets()
    for (let i = 0; i < span; i++) {
      const net = FIRST_NET + ((offset + i) % span)
      if (skip.has(net) || busy.has(net)) continue
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

/**
 * The N of every 127.N.x.y address with a listening TCP socket, from the kernel's table (default:
 * /proc/net/tcp). Addresses there are the IPv4 address's four bytes in host byte order, as hex.
 */
export function listeningNets(table: string = readFileSync('/proc/net/tcp', 'utf8')): Set<number> {
  const nets = new Set<number>()
  const littleEndian = endianness() === 'LE'
  for (const line of table.split('\n').slice(1)) {
    const [, local, , state] = line.trim().split(/\s+/)
    if (state !== '0A' || !local) continue // 0A: TCP_LISTEN
    const hex = local.split(':')[0] ?? ''
    if (hex.length !== 8) continue
    const bytes = [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16))
    const [a, b] = littleEndian ? [bytes[3], bytes[2]] : [bytes[0], bytes[1]]
    if (a === 127 && b !== undefined) nets.add(b)
  }
  return nets
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
