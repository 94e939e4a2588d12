/**
 * A release that misbehaves, for the deploy tests, made the way a bad change is made: a copy of this
 * project (its built CLI and its sources, node_modules linked) with one source file edited, whose CLI then
 * builds and deploys the edited app as `feedops deploy` always does. Nothing in the app, the process
 * manager or the deploy reads a test switch: the broken code is simply different code.
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {repoRoot} from './cli.js'

/** What the copy needs to run its CLI and build its bundle. */
const COPIED = ['bin', 'dist', 'app', 'src', 'package.json', 'package-lock.json', 'tsconfig.json', 'oclif.manifest.json']

export interface PatchedProject {
  root: string
  /** The copy's CLI entry point. */
  bin: string
  /** Replaces `find` (which must occur once) with `replace` in a file of the copy's sources. */
  patch(file: string, find: string, replace: string): void
  /** Puts every file back as it was in this project. */
  reset(): void
  remove(): void
}

export function patchedProject(): PatchedProject {
  const root = mkdtempSync(path.join(tmpdir(), 'feedops-patched-'))
  const cp = spawnSync('cp', ['-a', ...COPIED.filter((f) => existsSync(path.join(repoRoot, f))).map((f) => path.join(repoRoot, f)), root])
  if (cp.status !== 0) throw new Error(`cp: ${cp.stderr.toString()}`)
  symlinkSync(path.join(repoRoot, 'node_modules'), path.join(root, 'node_modules'))
  const touched = new Set<string>()
  return {
    root,
    bin: path.join(root, 'bin', 'run.js'),
    patch(file, find, replace) {
      const p = path.join(root, file)
      const text = readFileSync(p, 'utf8')
      if (text.split(find).length !== 2) throw new Error(`${file}: "${find}" does not occur exactly once`)
      writeFileSync(p, text.replace(find, replace))
      touched.add(file)
    },
    reset() {
      for (const f of touched) writeFileSync(path.join(root, f), readFileSync(path.join(repoRoot, f)))
      touched.clear()
    },
    remove() {
      rmSync(root, {recursive: true, force: true})
    },
  }
}

/** The edits that make the usual broken releases (each applied to a reset copy). */
export type Edit = readonly [file: string, find: string, replace: string]

export const BROKEN = {
  /** The app exits with code 1 `ms` after it first listens (and again after each restart: a crash loop). */
  exitsAfter: (ms: number): Edit =>
    [
      'app/main.ts',
      '  notifyReady()\n',
      `  notifyReady()\n  process.stderr.write(\`crashing in ${ms} ms: \${Date.now() + ${ms}}\\n\`)\n  setTimeout(() => process.exit(1), ${ms})\n`,
    ],
  /** /readyz never says ready. */
  unready: ['app/routes/health.ts', 'if (deps.lifecycle.draining) {', 'if (true) {'] as Edit,
  /** `pm.mjs restart` leaves the old process running and starts nothing (the gate must see the old release). */
  keepOld: ['src/deploy/pm.ts', '  const old = olds[0]\n', '  const old = olds[0]\n  if (old) return 0\n'] as Edit,
}
