import {definePlaybook} from '../src/playbook/define.js'
import {parseDf, parseMeminfo} from './facts.js'

/**
 * `feedops play check`: is every host fit to take a deploy? Five quick checks, each one cheap command
 * (no extra processes beyond the one that answers) on the host's single connection. The clock matters more than usual here: photo ids carry milliseconds since
 * the epoch, so a host whose clock is off mints ids out of order.
 */

export const limits = {diskUsedPercent: 98, memoryFreePercent: 2, clockSkewSeconds: 30}

export default definePlaybook({
  name: 'check',
  description: 'Check that every host answers, has disk, memory, a right clock and a writable temp dir.',
  steps: [
    {title: 'kernel', run: async (h) => (await h.run(['uname', '-sr'])).stdout.trim()},
    {
      title: 'disk space',
      run: async (h) => {
        // sshd always sets HOME; one simple command, so the shell execs df without forking.
        const disk = parseDf((await h.run('df -Pk -- "$HOME"')).stdout)
        if (disk.usedPercent >= limits.diskUsedPercent) throw new Error(`${disk.mount} is ${disk.usedPercent}% full`)
        return disk.usedPercent
      },
    },
    {
      title: 'memory',
      run: async (h) => {
        const mem = parseMeminfo((await h.run(['cat', '/proc/meminfo'])).stdout)
        const free = (100 * mem.availableKiB) / mem.totalKiB
        if (free < limits.memoryFreePercent) throw new Error(`only ${free.toFixed(1)}% of memory available`)
        return Math.round(free)
      },
    },
    {
      title: 'clock',
      run: async (h) => {
        const before = Date.now()
        const remote = Number((await h.run(['date', '+%s'])).stdout.trim()) * 1000
        const skew = Math.abs(remote - (before + Date.now()) / 2) / 1000
        // `date +%s` truncates to the second, hence the extra second of slack.
        if (!(skew <= limits.clockSkewSeconds + 1)) throw new Error(`clock is ${skew.toFixed(0)} s off`)
        return Math.round(skew)
      },
    },
    {
      title: 'temp dir writable',
      run: async (h) => {
        // Shell built-ins create the file; only rm runs as a process.
        await h.run('f="${TMPDIR:-/tmp}/feedops-check.$$"; : > "$f" && rm -f -- "$f"')
        return true
      },
    },
  ],
})
