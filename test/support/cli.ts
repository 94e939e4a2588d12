import {spawn, type ChildProcess} from 'node:child_process'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

/** The repository root (tests run from dist/test/…). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
/** The built CLI's entry point. */
export const bin = path.join(repoRoot, 'bin/run.js')

export interface Ran {
  /** Exit code; null when the process was ended by a signal. */
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

export interface CliOptions {
  /** Added to (or, when undefined, removed from) the environment; colours are always off. */
  env?: NodeJS.ProcessEnv
  onSpawn?: (child: ChildProcess) => void
  /** Called with everything printed so far, e.g. to send the child a signal at the right moment. */
  onStdout?: (text: string, child: ChildProcess) => void
  onStderr?: (text: string, child: ChildProcess) => void
  /** Killed after this long (default 60 s). */
  timeoutMs?: number
}

/** Runs the real CLI (from dist) in the repository and returns its exit code and output. */
export function cli(args: string[], opts: CliOptions = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const start = Date.now()
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: repoRoot,
      env: {...process.env, FORCE_COLOR: '0', ...opts.env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    opts.onSpawn?.(child)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stdout.on('data', (c: string) => {
      stdout += c
      opts.onStdout?.(stdout, child)
    })
    child.stderr.on('data', (c: string) => {
      stderr += c
      opts.onStderr?.(stderr, child)
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({code, signal, stdout, stderr, ms: Date.now() - start})
    })
  })
}
