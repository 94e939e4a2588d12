import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'
import {promisify} from 'node:util'

import {
  NGINX_BIN,
  NGINX_HEALTH_PATH,
  UPSTREAM_NAME,
  WRITES_UPSTREAM_NAME,
  nginxArgv,
  nginxNodeFiles,
  renderNginxConf,
  renderUpstreams,
} from '../../src/lb/nginx-conf.js'

const run = promisify(execFile)

describe('nginx config rendering', () => {
  it('lists every app host twice: for reads with kept-alive connections, for writes without', () => {
    const text = renderUpstreams([
      {address: '127.9.1.1', port: 8080},
      {address: '127.9.1.2', port: 8081},
    ])
    const blocks: Record<string, string> = Object.fromEntries([...text.matchAll(/^upstream (\S+) \{\n([^}]*)\}/gm)].map((m) => [m[1]!, m[2]!]))
    assert.deepEqual(Object.keys(blocks), [UPSTREAM_NAME, WRITES_UPSTREAM_NAME])
    for (const body of Object.values(blocks)) {
      assert.deepEqual([...body.matchAll(/^\s+server (\S+) /gm)].map((m) => m[1]), ['127.9.1.1:8080', '127.9.1.2:8081'])
    }
    assert.match(blocks[UPSTREAM_NAME]!, /^\s+keepalive \d+;$/m)
    assert.doesNotMatch(blocks[WRITES_UPSTREAM_NAME]!, /keepalive/)
  })

  it('keeps an empty upstream valid: one server marked down', () => {
    assert.match(renderUpstreams([]), /^\s+server 127\.0\.0\.1:9 down;$/m)
  })

  it('retries on connect errors and 502/503 but never non-idempotent requests once sent; writes go to their own upstream', () => {
    const files = nginxNodeFiles('/srv/node/nginx')
    const conf = renderNginxConf({files, listen: {address: '127.9.2.1', port: 8080}})
    assert.match(conf, /^\s+listen 127\.9\.2\.1:8080;$/m)
    const retries = conf.split('\n').filter((l) => l.includes('proxy_next_upstream '))
    assert.equal(retries.length, 2) // the proxy location and the health location
    for (const l of retries) assert.equal(l.trim(), 'proxy_next_upstream error timeout http_502 http_503;')
    assert.doesNotMatch(conf, /non_idempotent/)
    assert.match(conf, new RegExp(`map \\$request_method \\$feed_upstream \\{\\n\\s+POST ${WRITES_UPSTREAM_NAME};\\n\\s+PATCH ${WRITES_UPSTREAM_NAME};\\n\\s+default ${UPSTREAM_NAME};`))
    assert.match(conf, /location \/ \{\n\s+proxy_pass http:\/\/\$feed_upstream;/)
    assert.match(conf, new RegExp(`location = ${NGINX_HEALTH_PATH} \\{\\n\\s+proxy_pass http://feed_app/readyz;`))
    assert.match(conf, /^pid \/srv\/node\/nginx\/nginx\.pid;$/m)
    assert.match(conf, /^\s+include \/srv\/node\/nginx\/upstreams\.conf;$/m)
    assert.deepEqual(nginxArgv(files), [NGINX_BIN, '-p', '/srv/node/nginx', '-c', '/srv/node/nginx/nginx.conf', '-e', '/srv/node/nginx/logs/error.log', '-g', 'daemon off;'])
  })

  it('renders a config that nginx -t accepts, with and without app hosts', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'feedops-nginx-conf-'))
    try {
      const files = nginxNodeFiles(dir)
      mkdirSync(path.dirname(files.errorLog), {recursive: true})
      mkdirSync(files.temp, {recursive: true})
      writeFileSync(files.conf, renderNginxConf({files, listen: {address: '127.9.2.1', port: 8080}}))
      for (const servers of [[], [{address: '127.9.1.1', port: 8080}]]) {
        writeFileSync(files.upstreams, renderUpstreams(servers))
        // -t only parses and opens files: it binds no port.
        await run(NGINX_BIN, ['-t', '-q', '-p', dir, '-c', files.conf, '-e', files.errorLog])
      }
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
