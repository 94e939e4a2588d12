import {definePlaybook} from '../src/playbook/define.js'

/** `feedops play facts`: what each host is running, one table row per host. */

export interface DiskFacts {
  mount: string
  totalKiB: number
  availKiB: number
  usedPercent: number
}

export interface MemoryFacts {
  totalKiB: number
  availableKiB: number
}

/** PRETTY_NAME (or NAME VERSION_ID) from /etc/os-release. */
export function parseOsRelease(text: string): string {
  const vars = new Map<string, string>()
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim())
    if (m) vars.set(m[1]!, m[2]!.replace(/^(["'])(.*)\1$/, '$2'))
  }
  return vars.get('PRETTY_NAME') ?? ([vars.get('NAME'), vars.get('VERSION_ID')].filter(Boolean).join(' ') || 'unknown')
}

/** The data line of `df -Pk PATH`. */
export function parseDf(text: string): DiskFacts {
  const line = text.trim().split('\n').slice(-1)[0] ?? ''
  const f = line.split(/\s+/)
  // Filesystem 1024-blocks Used Available Capacity Mounted-on (the mount point may contain spaces)
  if (f.length < 6 || !/^\d+%$/.test(f[4]!)) throw new Error(`unexpected df output: ${line}`)
  return {mount: f.slice(5).join(' '), totalKiB: Number(f[1]), availKiB: Number(f[3]), usedPercent: Number(f[4]!.slice(0, -1))}
}

export function parseMeminfo(text: string): MemoryFacts {
  const kib = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)
    return m ? Number(m[1]) : undefined
  }
  const totalKiB = kib('MemTotal')
  if (totalKiB === undefined) throw new Error('no MemTotal in /proc/meminfo')
  return {totalKiB, availableKiB: kib('MemAvailable') ?? kib('MemFree') ?? 0}
}

/** First number of /proc/uptime, as "3d 4h 5m". */
export function formatUptime(seconds: number): string {
  const d = Math.floor(seconds / 86400)
  const h = Math.floor((seconds % 86400) / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : `${m}m`
}

export function formatKiB(kib: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = kib
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v >= 10 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`
}

export default definePlaybook({
  name: 'facts',
  description: 'Show OS, kernel, disk, memory, Node.js version and uptime of every host.',
  steps: [
    {title: 'os', run: async (h) => parseOsRelease((await h.run(['cat', '/etc/os-release'])).stdout)},
    {title: 'kernel', run: async (h) => (await h.run(['uname', '-r'])).stdout.trim()},
    // The host's disk is its home when it has one (the lab's hosts do), else the root filesystem.
    {title: 'disk', run: async (h) => parseDf((await h.run('df -Pk -- "${HOME:-/}" 2>/dev/null || df -Pk /')).stdout)},
    {title: 'memory', run: async (h) => parseMeminfo((await h.run(['cat', '/proc/meminfo'])).stdout)},
    {title: 'node', run: async (h) => (await h.run('command -v node >/dev/null 2>&1 && node --version || echo none')).stdout.trim()},
    {title: 'uptime', run: async (h) => Number((await h.run(['cat', '/proc/uptime'])).stdout.split(/\s+/)[0])},
  ],
  report: (v) => {
    const disk = v.disk as DiskFacts
    const mem = v.memory as MemoryFacts
    return {
      os: String(v.os),
      kernel: String(v.kernel),
      disk: `${formatKiB(disk.availKiB)} free of ${formatKiB(disk.totalKiB)} (${disk.usedPercent}% used, ${disk.mount})`,
      memory: `${formatKiB(mem.availableKiB)} free of ${formatKiB(mem.totalKiB)}`,
      node: String(v.node),
      uptime: formatUptime(v.uptime as number),
    }
  },
})
