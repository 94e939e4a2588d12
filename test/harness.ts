/**
 * `npm test`: runs every compiled test file under dist/test with Node's test runner and ends with
 * the line `N passed, N failed, N skipped`. Test files that need servers start their own small lab
 * (test/support/lab.ts), each on its own loopback block, so files can run in parallel.
 *
 * Usage: node dist/test/harness.js [substring filter…]
 */
import {spawn} from 'node:child_process'
import {readdirSync, statSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))

function findTests(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name)
    if (name === 'bench' || name === 'support') return []
    if (statSync(full).isDirectory()) return findTests(full)
    return name.endsWith('.test.js') ? [full] : []
  })
}

const filters = process.argv.slice(2)
const files = findTests(here)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort()

if (files.length === 0) {
  // With no files `node --test` would discover every .js under test/, benchmarks included.
  console.log(`no test file matches ${filters.join(', ')}`)
  console.log('0 passed, 0 failed, 0 skipped')
  process.exit(1)
}

const concurrency = process.env.FEEDOPS_TEST_CONCURRENCY ?? '3'
const child = spawn(
  process.execPath,
  ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  {stdio: ['ignore', 'pipe', 'inherit'], env: {...process.env, FORCE_COLOR: '0'}},
)

// The runner's summary (`ℹ pass N` …) comes before its list of failing tests, which can be long, so the
// counts are taken from each line as it streams by rather than from the output's tail.
const counts = new Map<string, number>()
let partial = ''
child.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk)
  const lines = (partial + chunk.toString()).split('\n')
  partial = lines.pop() ?? ''
  for (const line of lines) {
    const m = /^ℹ (\w+) (\d+)$/.exec(line)
    if (m) counts.set(m[1]!, Number(m[2]))
  }
})

child.on('close', (code) => {
  const count = (label: string) => counts.get(label) ?? 0
  const passed = count('pass')
  const failed = count('fail') + count('cancelled')
  const skipped = count('skipped') + count('todo')
  if (passed + failed === 0) {
    console.log('no tests ran')
    process.exit(1)
  }
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
  process.exit(code === 0 && failed === 0 ? 0 : 1)
})
