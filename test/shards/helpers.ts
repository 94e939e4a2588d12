import {writeFileSync} from 'node:fs'
import path from 'node:path'

import pg from 'pg'

import {cli as runBuiltCli} from '../support/cli.js'
import type {TestLab} from '../support/lab.js'

/** The repository root and the built CLI's entry point (`cli`), as every CLI test uses them. */
export {bin as cli, repoRoot} from '../support/cli.js'

export interface CliRun {
  code: number
  stdout: string
  stderr: string
}

/** Runs the real CLI (from dist) with no $FEEDOPS_CONFIG; a run ended by a signal (or its timeout) is code 1. */
export async function runCli(args: string[], opts: {timeout?: number; env?: NodeJS.ProcessEnv} = {}): Promise<CliRun> {
  const r = await runBuiltCli(args, {timeoutMs: opts.timeout ?? 120_000, env: {FEEDOPS_CONFIG: undefined, ...opts.env}})
  return {code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr}
}

export function serverUrl(lab: TestLab, i: number, db: string): string {
  return `postgres://postgres@127.${lab.net}.0.1:${5433 + i - 1}/${db}`
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({connectionString: url})
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/**
 * A fresh set of databases on the lab's servers (catalog `<name>_catalog` on pg1, `<name>` on each
 * server) and a config file pointing at them, so each scenario starts from nothing.
 */
export async function freshShardsConfig(
  lab: TestLab,
  name: string,
  opts: {servers: number; logical: number; extraServers?: {name: string; url: string}[]; epoch?: string; weights?: number[]},
): Promise<{file: string; catalog: string; servers: {name: string; url: string}[]}> {
  await withClient(serverUrl(lab, 1, 'postgres'), (c) => c.query(`CREATE DATABASE ${name}_catalog`))
  const servers: {name: string; url: string}[] = []
  for (let i = 1; i <= opts.servers; i++) {
    await withClient(serverUrl(lab, i, 'postgres'), (c) => c.query(`CREATE DATABASE ${name}`))
    servers.push({name: `pg${i}`, url: serverUrl(lab, i, name)})
  }
  const all = [...servers, ...(opts.extraServers ?? [])]
  const catalog = serverUrl(lab, 1, `${name}_catalog`)
  const file = path.join(lab.dir, `${name}.yml`)
  const epoch = opts.epoch ? `\n      epoch: "${opts.epoch}"` : ''
  writeFileSync(
    file,
    `environments:
  lab:
    inventory: {source: static, hosts: [{name: app1, address: 127.0.0.1}]}
    shards:
      catalog: "${catalog}"
      logical: ${opts.logical}${epoch}
      servers:
${all.map((s, i) => `        - {name: ${s.name}, url: "${s.url}"${opts.weights?.[i] ? `, weight: ${opts.weights[i]}` : ''}}`).join('\n')}
`,
  )
  return {file, catalog, servers}
}

/**
 * Waits until no other client backend is connected to the database of `url`. A killed client's
 * backend finishes (and commits) the statement it was running before it notices the client is gone.
 */
export async function waitForNoBackends(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  await withClient(url, async (c) => {
    for (;;) {
      const r = await c.query<{n: number}>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
      )
      if (r.rows[0]!.n === 0) return
      if (Date.now() > deadline) throw new Error(`${r.rows[0]!.n} backends still connected to ${url}`)
      await new Promise((res) => setTimeout(res, 20))
    }
  })
}

/** Names of the shard schemas on a server. */
export async function shardSchemas(url: string): Promise<string[]> {
  return withClient(url, async (c) => {
    const r = await c.query<{nspname: string}>("SELECT nspname FROM pg_namespace WHERE nspname ~ '^s[0-9]{4}$' ORDER BY 1")
    return r.rows.map((x) => x.nspname)
  })
}
