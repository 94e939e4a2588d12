import assert from 'node:assert/strict'
import {existsSync, mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {describe, it} from 'node:test'

import {UserError} from '../../src/errors.js'
import {checkPackages, labUp, missingPackages} from '../../src/lab/index.js'
import {findBinary} from '../../src/lab/packages.js'

describe('lab packages', () => {
  it('finds the installed programs, including a versioned Postgres dir', () => {
    assert.equal(findBinary('/usr/sbin/sshd'), '/usr/sbin/sshd')
    assert.match(findBinary('/usr/lib/postgresql/*/bin/initdb') ?? '', /^\/usr\/lib\/postgresql\/\d+\/bin\/initdb$/)
    assert.match(findBinary('redis-server') ?? '', /\/redis-server$/)
    assert.equal(findBinary('no-such-program-feedops'), undefined)
    assert.equal(findBinary('/usr/lib/postgresql/*/bin/no-such-program'), undefined)
  })

  it('names every missing package once, with the apt-get line and --install', () => {
    const needs = [
      {package: 'redis-server', binary: 'redis-server-missing-feedops'},
      {package: 'memcached', binary: '/nonexistent/memcached'},
      {package: 'redis-server', binary: 'redis-check-missing-feedops'},
      {package: 'openssh-server', binary: '/usr/sbin/sshd'},
    ]
    assert.deepEqual(missingPackages(needs), ['redis-server', 'memcached'])
    assert.throws(
      () => checkPackages(needs),
      (err: unknown) => {
        assert.ok(err instanceof UserError)
        assert.equal(err.exitCode, 2)
        assert.match(err.message, /needs the Debian packages redis-server, memcached/)
        assert.match(err.fix ?? '', /`apt-get install -y redis-server memcached`/)
        assert.match(err.fix ?? '', /--install/)
        return true
      },
    )
    assert.doesNotThrow(() => checkPackages(needs.slice(3)))
  })

  it('lab up with a package missing fails before creating or starting anything', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'feedops-pkg-')), 'lab')
    await assert.rejects(
      labUp({dir, net: 251, hosts: 1, postgres: 0, redis: false, memcached: false, cloud: false, binaries: {'openssh-server': '/nonexistent/sshd'}}),
      (err: unknown) => err instanceof UserError && /apt-get install -y openssh-server/.test(err.fix ?? '') && /openssh-server/.test(err.message),
    )
    assert.equal(existsSync(dir), false)
  })

  it('names nginx-light and pgbouncer when NGINX nodes and PgBouncers are asked for and missing', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'feedops-pkg-')), 'lab')
    await assert.rejects(
      labUp({
        dir,
        net: 251,
        hosts: 1,
        nginx: 1,
        postgres: 1,
        pgbouncer: true,
        redis: false,
        memcached: false,
        cloud: false,
        binaries: {'nginx-light': '/nonexistent/nginx', pgbouncer: '/nonexistent/pgbouncer'},
      }),
      (err: unknown) => err instanceof UserError && /packages nginx-light, pgbouncer \(nginx, pgbouncer not found\)/.test(err.message),
    )
    assert.equal(existsSync(dir), false)
  })

  it('names haproxy when the ELB is asked for (NGINX nodes and the cloud endpoint) and it is missing', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'feedops-pkg-')), 'lab')
    await assert.rejects(
      labUp({dir, net: 251, hosts: 0, nginx: 1, postgres: 0, redis: false, memcached: false, cloud: true, binaries: {haproxy: '/nonexistent/haproxy'}}),
      (err: unknown) => err instanceof UserError && /package haproxy \(haproxy not found\)/.test(err.message) && /apt-get install -y haproxy/.test(err.fix ?? ''),
    )
    assert.equal(existsSync(dir), false)
  })

  it("refuses a lab dir too long for HAProxy's runtime socket before touching anything", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'feedops-pkg-')), 'x'.repeat(90), 'lab')
    await assert.rejects(
      labUp({dir, net: 251, hosts: 0, nginx: 1, postgres: 0, redis: false, memcached: false, cloud: true}),
      (err: unknown) => err instanceof UserError && /too long for HAProxy's runtime socket/.test(err.message) && /shorter --dir/.test(err.fix ?? ''),
    )
    assert.equal(existsSync(dir), false)
  })

  it('rejects bad sizes before touching anything', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'feedops-pkg-')), 'lab')
    await assert.rejects(labUp({dir, net: 251, hosts: 300}), /hosts must be a whole number from 0 to 254/)
    await assert.rejects(labUp({dir, net: 256, hosts: 1}), /net must be a whole number from 0 to 255/)
    await assert.rejects(labUp({dir, net: 251, hosts: 1, nginx: -1}), /nginx must be a whole number from 0 to 254/)
    assert.equal(existsSync(dir), false)
  })
})
