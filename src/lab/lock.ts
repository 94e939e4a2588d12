import {openSync, readFileSync, rmSync, writeFileSync, closeSync} from 'node:fs'
import path from 'node:path'

import {ExitCode, UserError} from '../errors.js'
import {readProc} from './process.js'

/** One `lab up`/`lab down` at a time per lab dir: <dir>/lab.lock holds the owner's pid. */
export function acquireLabLock(dir: string): () => void {
  const file = path.join(dir, 'lab.lock')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx')
      writeFileSync(fd, `${process.pid} ${readProc(process.pid)?.startTime ?? 0}\n`)
      closeSync(fd)
      return () => rmSync(file, {force: true})
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const [pid, start] = readFileSync(file, 'utf8').trim().split(' ').map(Number)
      const owner = pid ? readProc(pid) : undefined
      if (owner && owner.startTime === start && owner.state !== 'Z') {
        throw new UserError(`Another \`feedops lab\` (pid ${pid}) is working on ${dir}.`, {
          fix: 'Wait for it to finish, then run the command again.',
          exitCode: ExitCode.nothingDone,
        })
      }
      rmSync(file, {force: true}) // its owner died
    }
  }
  throw new UserError(`Could not lock ${dir}.`, {fix: 'Run the command again.', exitCode: ExitCode.nothingDone})
}
