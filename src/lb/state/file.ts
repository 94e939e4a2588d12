import {closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync} from 'node:fs'
import {hostname} from 'node:os'
import path from 'node:path'

import {emptyState, newLockInfo, parseState, sleep, type Acquired, type LbState, type LbStateStore, type LockInfo} from './store.js'

/**
 * The state in one JSON file, written atomically (a temp file, fsync, rename over the old one), and the
 * pass lock beside it: `<file>.lock`, created with O_EXCL so exactly one process makes it. A lock whose
 * holder is gone (same machine, pid no longer running) or older than staleS is taken over: it is first
 * renamed away, which only one of two racing processes can do, then made anew.
 */
export function fileStateStore(file: string, staleS: number): LbStateStore {
  const lockFile = `${file}.lock`
  mkdirSync(path.dirname(file), {recursive: true})

  const tryCreate = (info: LockInfo): boolean => {
    // Written whole to a private temp file, then linked in place: link fails if the lock exists, and a
    // reader never sees a lock file without its content.
    const tmp = `${lockFile}.${info.token}`
    const fd = openSync(tmp, 'wx', 0o644)
    try {
      writeSync(fd, `${JSON.stringify(info)}\n`)
    } finally {
      closeSync(fd)
    }
    try {
      linkSync(tmp, lockFile)
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw err
    } finally {
      unlinkSync(tmp)
    }
  }
  const holder = (): {info: LockInfo | undefined; ageS: number} | undefined => {
    try {
      const ageS = (Date.now() - statSync(lockFile).mtimeMs) / 1000
      let info: LockInfo | undefined
      try {
        info = JSON.parse(readFileSync(lockFile, 'utf8')) as LockInfo
      } catch {
        info = undefined
      }
      return {info, ageS}
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }
  const isStale = (h: {info: LockInfo | undefined; ageS: number}) =>
    h.ageS > staleS || (h.info !== undefined && h.info.host === hostname() && !pidAlive(h.info.pid))

  return {
    where: `state file ${file}`,
    async acquire(what, waitMs = 0) {
      const info = newLockInfo(what)
      const deadline = Date.now() + waitMs
      for (;;) {
        if (tryCreate(info)) return {ok: true, lock: {info, release: async () => releaseIfMine(lockFile, info.token)}}
        const h = holder()
        if (h && isStale(h)) {
          const away = `${lockFile}.stale.${info.token}`
          try {
            renameSync(lockFile, away)
            unlinkSync(away)
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
          }
          if (tryCreate(info)) {
            const result: Acquired = {ok: true, lock: {info, release: async () => releaseIfMine(lockFile, info.token)}}
            if (h.info) result.tookOver = h.info
            return result
          }
          continue
        }
        if (Date.now() >= deadline) return {ok: false, holder: h?.info}
        await sleep(Math.min(200, Math.max(1, deadline - Date.now())))
      }
    },
    async read() {
      try {
        return parseState(readFileSync(file, 'utf8'), file)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState()
        throw err
      }
    },
    async write(state: LbState) {
      const tmp = `${file}.${process.pid}.tmp`
      const fd = openSync(tmp, 'w', 0o644)
      try {
        writeSync(fd, `${JSON.stringify(state, null, 2)}\n`)
        fsyncSync(fd)
      } finally {
        closeSync(fd)
      }
      renameSync(tmp, file)
    },
    async close() {},
  }
}

function releaseIfMine(lockFile: string, token: string): void {
  try {
    const info = JSON.parse(readFileSync(lockFile, 'utf8')) as LockInfo
    if (info.token === token) unlinkSync(lockFile)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
