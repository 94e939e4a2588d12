import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {loadConfig} from '../../src/config/load.js'
import {loadInventory} from '../../src/inventory/index.js'
import {labDown, labStatus, labUp} from '../../src/lab/index.js'
import {labPaths} from '../../src/lab/layout.js'
import {readProc} from '../../src/lab/process.js'
import {NGINX_HEALTH_PATH, nginxNodeFiles, renderUpstreams} from '../../src/lb/nginx-conf.js'
import {startTestLab, type TestLab} from '../support/lab.js'

/**
 * NGINX nodes against a real lab: 2 (then 3) app hosts, 1 NGINX node, the EC2 endpoint. The "app" on
 * each app host's address is a tiny HTTP server in this process that says which host answered.
 */

const feedops = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/run.js')

function cli(args: string[]): Promise<{code: number; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    execFile(process.execPath, [feedops, ...args], (err, stdout, stderr) => {
      resolve({code: err ? Number((err as {code?: number}).code ?? 1) : 0, stdout, stderr})
    })
  })
}

/** A stand-in app host: answers every request with its name; POST /refuse answers 503 (a write it did not apply). */
class FakeApp {
  hits = 0
  posts = 0
  /** Requests that came on a connection nginx had used before (kept alive), by method. */
  reused = {GET: 0, POST: 0}
  private served = new WeakMap<object, number>()
  private server: http.Server | undefined
  constructor(
    readonly name: string,
    readonly address: string,
  ) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.hits++
      const before = this.served.get(req.socket) ?? 0
      this.served.set(req.socket, before + 1)
      if (before > 0 && (req.method === 'GET' || req.method === 'POST')) this.reused[req.method]++
      req.resume()
      req.on('end', () => {
        if (req.method === 'POST') this.posts++
        const status = req.method === 'POST' && req.url === '/refuse' ? 503 : req.method === 'POST' ? 201 : 200
        res.writeHead(status, {'content-type': 'text/plain'}).end(this.name)
      })
    })
    this.server.keepAliveTimeout = 65_000
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject)
      this.server!.listen(8080, this.address, resolve)
    })
  }

  async stop(): Promise<void> {
    const s = this.server
    this.server = undefined
    if (!s) return
    const closed = new Promise((resolve) => s.close(resolve))
    s.closeAllConnections()
    await closed
  }
}

/** Reads and some writes through `url` from 4 loops until `stop()` (60 s at most); failures are listed. */
function loadThrough(url: string): {stop(): Promise<{ok: number; failures: string[]}>} {
  let stopped = false
  let ok = 0
  const failures: string[] = []
  const deadline = Date.now() + 60_000
  const loops = Array.from({length: 4}, async (_, i) => {
    for (let n = 0; !stopped && Date.now() < deadline; n++) {
      const write = n % 5 === 0
      try {
        const r = await request(write ? `${url}/photos` : `${url}/feed/${i}`, write ? 'POST' : 'GET', write ? '{}' : undefined)
        if (r.status === (write ? 201 : 200)) ok++
        else failures.push(`${write ? 'POST' : 'GET'}: ${r.status} ${r.body}`)
      } catch (err) {
        failures.push(`${write ? 'POST' : 'GET'}: ${(err as Error).message}`)
      }
    }
  })
  return {
    stop: async () => {
      stopped = true
      await Promise.all(loops)
      return {ok, failures}
    },
  }
}

const agent = new http.Agent({keepAlive: true, maxSockets: 8})

/**
 * One request. GETs reuse kept-alive connections; a GET that fails on a reused connection before any
 * response byte is sent again once, on a new connection, as HTTP clients do (RFC 9112 §9.3.1, and Node's
 * docs on `reusedSocket`): a reload closes each old worker's idle client connections, and a request
 * already on its way into one is reset unread. Writes take a new connection, so they never meet that race.
 */
function request(url: string, method = 'GET', body?: string, retried = false): Promise<{status: number; body: string}> {
  const idempotent = method === 'GET'
  return new Promise((resolve, reject) => {
    const req = http.request(url, {method, agent: idempotent && !retried ? agent : false, headers: body ? {'content-type': 'application/json'} : {}}, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({status: res.statusCode ?? 0, body: text}))
      res.on('error', reject)
    })
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (idempotent && req.reusedSocket && !retried && (err.code === 'ECONNRESET' || err.message === 'socket hang up')) {
        retriedGets++
        request(url, method, body, true).then(resolve, reject)
      } else reject(err)
    })
    req.end(body)
  })
}
let retriedGets = 0

describe('lab NGINX nodes', {timeout: 300_000}, () => {
  let lab: TestLab
  let node: string
  const apps: FakeApp[] = []
  before(async () => {
    lab = await startTestLab({hosts: 2, nginx: 1, cloud: true})
    node = `http://${lab.layout.nginx[0]!.address}:8080`
    for (const h of lab.layout.hosts) apps.push(new FakeApp(h.name, h.address))
  })
  after(async () => {
    agent.destroy()
    await Promise.all(apps.map((a) => a.stop()))
    await lab?.stop()
  })

  it('runs nginx on 127.N.2.1:8080 from the node folder, with its pid file there, and an sshd beside it', async () => {
    const status = await labStatus(lab.dir)
    const nginx = status.processes.find((p) => p.component === 'nginx')!
    const sshd = status.processes.find((p) => p.component === 'sshd' && p.name === 'nginx1')!
    assert.ok(nginx.alive && sshd.alive)
    assert.equal(`${nginx.address}:${nginx.port}`, `127.${lab.net}.2.1:8080`)
    assert.equal(`${sshd.address}:${sshd.port}`, `127.${lab.net}.2.1:2222`)
    const files = nginxNodeFiles(labPaths.nginxDir(lab.dir, 'nginx1'))
    assert.equal(Number(readFileSync(files.pid, 'utf8').trim()), nginx.pid)
    assert.match(readFileSync(files.upstreams, 'utf8'), new RegExp(`server 127\\.${lab.net}\\.1\\.2:8080 `))
  })

  it('is listed by the EC2 endpoint with Role=nginx, so the inventory has it', async () => {
    const hosts = await loadInventory(loadConfig({flag: lab.configFile}).env)
    assert.deepEqual(
      hosts.map((h) => [h.name, h.address, h.roles.join(','), h.instanceId]),
      [...lab.layout.hosts, ...lab.layout.nginx].map((h) => [h.name, h.address, h.role, h.instanceId]),
    )
  })

  it('health fails while no app host answers, and passes once one does', async () => {
    const down = await request(node + NGINX_HEALTH_PATH)
    assert.ok(down.status === 502 || down.status === 503, `health said ${down.status} with no app host up`)
    await apps[1]!.start()
    // nginx may still hold app2 as failed for its fail_timeout (2 s) after the probe above.
    let up = await request(node + NGINX_HEALTH_PATH)
    for (let i = 0; i < 40 && up.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100))
      up = await request(node + NGINX_HEALTH_PATH)
    }
    assert.equal(up.status, 200)
    await apps[0]!.start()
  })

  it('retries a write on the next app host when the connection is refused, never after the app answered', async () => {
    await apps[0]!.stop() // app1's port now refuses connections
    const before = apps[1]!.posts
    for (let i = 0; i < 6; i++) {
      const r = await request(`${node}/likes`, 'POST', '{}')
      assert.deepEqual(r, {status: 201, body: 'app2'})
    }
    assert.equal(apps[1]!.posts - before, 6)
    await apps[0]!.start()
    // A 503 to a POST may follow a write the app applied: nginx must pass it on, not try another host.
    const posts = apps[0]!.posts + apps[1]!.posts
    const refused = await request(`${node}/refuse`, 'POST', '{}')
    assert.equal(refused.status, 503)
    assert.equal(apps[0]!.posts + apps[1]!.posts - posts, 1, 'a refused POST went to a second app host')
  })

  it('play nginx-upstreams after growing the app hosts: the new host gets traffic, no request fails', async () => {
    const grown = new FakeApp('app3', `127.${lab.net}.1.3`)
    apps.push(grown)
    const load = loadThrough(node)
    let result: {ok: number; failures: string[]} | undefined
    try {
      await labUp({dir: lab.dir, hosts: 3})
      await grown.start()
      const r = await cli(['play', 'nginx-upstreams', '--config', lab.configFile])
      assert.equal(r.code, 0, r.stdout + r.stderr)
      assert.match(r.stdout, /nginx1 .*APP HOSTS=3 .*changed/)
      for (let i = 0; i < 100 && grown.hits === 0; i++) await new Promise((res) => setTimeout(res, 50))
      assert.ok(grown.hits > 0, 'the new app host got no request after the reload')
    } finally {
      result = await load.stop()
    }
    assert.deepEqual(result.failures, [])
    assert.ok(result.ok > 50, `only ${result.ok} requests went through`)
    assert.ok(retriedGets <= 8, `${retriedGets} reads had to be sent again`) // at most one per reused connection
    // Reads reuse nginx's connections to the app hosts; writes never do (each opens its own).
    assert.ok(apps.some((a) => a.reused.GET > 0), 'no read came on a kept-alive upstream connection')
    assert.deepEqual(apps.map((a) => a.reused.POST), apps.map(() => 0))
  })

  it('an upstream block that fails nginx -t is not left installed, and nginx keeps serving', async () => {
    const files = nginxNodeFiles(labPaths.nginxDir(lab.dir, 'nginx1'))
    const conf = readFileSync(files.conf, 'utf8')
    const old = renderUpstreams(apps.slice(0, 2).map((a) => ({address: a.address, port: 8080})))
    writeFileSync(files.upstreams, old)
    // A broken main config makes the check of the new block fail.
    writeFileSync(files.conf, conf.replace('worker_processes 1;', 'worker_processes nope;'))
    try {
      const r = await cli(['play', 'nginx-upstreams', '--config', lab.configFile])
      assert.equal(r.code, 1)
      assert.match(r.stdout + r.stderr, /nginx1.*nginx -t: .*(invalid value "nope"|test failed)/)
    } finally {
      writeFileSync(files.conf, conf)
    }
    assert.equal(readFileSync(files.upstreams, 'utf8'), old)
    assert.equal((await request(node + NGINX_HEALTH_PATH)).status, 200)
  })

  it('lab down stops nginx by its pid', async () => {
    const nginx = (await labStatus(lab.dir)).processes.find((p) => p.component === 'nginx')!
    const down = await labDown(lab.dir)
    assert.equal(down.processes.find((p) => p.component === 'nginx')!.alive, false)
    assert.match(readProc(nginx.pid!)?.state ?? 'gone', /^(gone|Z)$/)
    await assert.rejects(request(node + NGINX_HEALTH_PATH), /ECONNREFUSED/)
  })
})
