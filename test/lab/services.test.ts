import assert from 'node:assert/strict'
import net from 'node:net'
import {after, before, describe, it} from 'node:test'
import {Redis} from 'ioredis'
import pg from 'pg'

import {loadConfig} from '../../src/config/load.js'
import {startTestLab, type TestLab} from '../support/lab.js'

/** One memcached text-protocol exchange. */
function memcachedAsk(host: string, port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({host, port})
    let reply = ''
    socket.setTimeout(5000, () => socket.destroy(new Error('memcached timed out')))
    socket.on('connect', () => socket.write(`${command}\r\n`))
    socket.on('data', (d) => {
      reply += d.toString()
      if (reply.endsWith('\r\n')) {
        socket.end()
        resolve(reply.trim())
      }
    })
    socket.on('error', reject)
  })
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({connectionString: url})
  await client.connect()
  try {
    return (await client.query<T>(sql)).rows
  } finally {
    await client.end()
  }
}

describe('lab servers: Postgres, Redis, Memcached', () => {
  let lab: TestLab
  before(async () => {
    lab = await startTestLab({postgres: 2, redis: true, memcached: true})
  })
  after(() => lab?.stop())

  it('every Postgres server accepts connections, has wal_level=logical and its databases', async () => {
    const [pg1, pg2] = lab.layout.postgres
    for (const server of [pg1!, pg2!]) {
      const rows = await query<{wal_level: string}>(server.url, 'SHOW wal_level')
      assert.equal(rows[0]!.wal_level, 'logical')
    }
    const dbs = async (url: string) =>
      (await query<{datname: string}>(url, "SELECT datname FROM pg_database WHERE datname LIKE 'feedops%' ORDER BY 1")).map((r) => r.datname)
    assert.deepEqual(await dbs(pg1!.url), ['feedops', 'feedops_catalog'])
    assert.deepEqual(await dbs(pg2!.url), ['feedops'])
    const [catalog] = await query<{current_database: string}>(pg1!.catalogUrl!, 'SELECT current_database()')
    assert.equal(catalog!.current_database, 'feedops_catalog')
  })

  it('Postgres listens on TCP only, at its lab address and port', async () => {
    const rows = await query<{name: string; setting: string}>(
      lab.layout.postgres[1]!.url,
      "SELECT name, setting FROM pg_settings WHERE name IN ('listen_addresses', 'port', 'unix_socket_directories') ORDER BY name",
    )
    assert.deepEqual(rows, [
      {name: 'listen_addresses', setting: `127.${lab.net}.0.1`},
      {name: 'port', setting: '5434'},
      {name: 'unix_socket_directories', setting: ''},
    ])
  })

  it('Redis answers PING on its lab address', async () => {
    const redis = new Redis(lab.layout.redis.url, {lazyConnect: true, maxRetriesPerRequest: 1})
    try {
      await redis.connect()
      assert.equal(await redis.ping(), 'PONG')
      await redis.set('lab:probe', 'ok')
      assert.equal(await redis.get('lab:probe'), 'ok')
    } finally {
      redis.disconnect()
    }
  })

  it('Memcached answers version and stores values', async () => {
    const {address, port} = lab.layout.memcached
    assert.match(await memcachedAsk(address, port, 'version'), /^VERSION \d+\.\d+/)
    assert.equal(await memcachedAsk(address, port, 'set lab 0 60 2\r\nok'), 'STORED')
  })

  it('the lab config points at exactly these servers', () => {
    const {env} = loadConfig({flag: lab.configFile})
    assert.deepEqual(env.shards?.servers.map((s) => s.url), lab.layout.postgres.map((p) => p.url))
    assert.equal(env.redis?.url, lab.layout.redis.url)
    assert.deepEqual(env.memcached?.servers, [lab.layout.memcached.server])
  })
})
