import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'

import {UserError} from '../../src/errors.js'
import {loadInventory} from '../../src/inventory/index.js'
import {ec2Service} from '../../src/lab/cloud/ec2/index.js'
import {CloudApiError} from '../../src/lab/cloud/errors.js'
import {appInstances, startFixtureCloud, type FixtureCloud, type InstanceInput} from './cloud-fixture.js'

const fast = {ec2: {maxAttempts: 1, connectionTimeout: 1000, requestTimeout: 5000}}

function userError(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`)
    assert.match(err.message, pattern)
    assert.ok(err.fix && err.fix.length > 0, 'a UserError carries a fix')
    return true
  }
}

const fleet: InstanceInput[] = [
  ...appInstances(3, {Env: 'lab', Role: 'app'}),
  {instanceId: 'i-0db0000000000001', privateIp: '127.20.0.11', tags: {Name: 'db1', Role: 'db,backup', Env: 'lab'}},
  {instanceId: 'i-0pr0000000000001', privateIp: '10.0.0.1', tags: {Name: 'prod-app1', Role: 'app', Env: 'prod'}},
  {instanceId: 'i-0st0000000000001', privateIp: '127.20.1.99', state: 'stopped', tags: {Name: 'app99', Role: 'app', Env: 'lab'}},
  {instanceId: 'i-0noname000000001', privateIp: '127.20.1.77', publicIp: '127.20.9.77', tags: {Role: 'app', Env: 'lab'}},
]

describe('EC2 inventory against the lab cloud endpoint', () => {
  let cloud: FixtureCloud
  before(async () => {
    cloud = await startFixtureCloud(fleet)
  })
  after(async () => {
    await cloud.stop()
  })

  it('holds EC2 Name tags to the static name rule: a newline or an ANSI escape is bad input, shown escaped', async () => {
    const evil = (name: string, k: number): InstanceInput => ({instanceId: `i-0evil00000000${k}`, privateIp: `127.20.7.${k}`, tags: {Name: name, Env: `evil${k}`}})
    const cases: [string, RegExp][] = [
      ['app2\napp1 | forged', /^EC2 instance i-0evil000000001 has a Name tag that is not a host name: "app2\napp1 \| forged" \(letters, digits/],
      ['\x1b[2J\x1b[31mapp1', /: "\x1b\[2J\x1b\[31mapp1" /],
      ['app 1', /: "app 1" /],
    ]
    await cloud.write([...fleet, ...cases.map(([name], i) => evil(name, i + 1))])
    try {
      for (const [i, [, pattern]] of cases.entries()) {
        await assert.rejects(loadInventory(cloud.env({filters: {Env: `evil${i + 1}`}}), fast), userError(pattern))
      }
    } finally {
      await cloud.write(fleet)
    }
  })

  it('keeps running instances matching the tag filters, with name, address, roles, tags and instance id', async () => {
    const hosts = await loadInventory(cloud.env({filters: {Env: 'lab', Role: 'app'}}))
    assert.deepEqual(
      hosts.map((h) => h.name),
      ['app1', 'app2', 'app3', 'i-0noname000000001'],
      'prod and db hosts filtered out by tag, the stopped app99 left out, unnamed instance falls back to its id',
    )
    assert.deepEqual(hosts[0], {
      name: 'app1',
      address: '127.20.1.1',
      roles: ['app'],
      tags: {Name: 'app1', Env: 'lab', Role: 'app'},
      instanceId: 'i-0lab000000000001',
    })
  })

  it('splits a comma-separated role tag and honours nameTag/roleTag/address settings', async () => {
    const [db] = await loadInventory(cloud.env({filters: {Env: 'lab', Role: 'db*'}}))
    assert.equal(db?.name, 'db1')
    assert.deepEqual(db?.roles, ['db', 'backup'])

    await cloud.write([{instanceId: 'i-0pub000000000001', privateIp: '127.20.1.5', publicIp: '127.20.9.5', tags: {Env: 'lab', Host: 'web5', Kind: 'web, lb'}}])
    const [web] = await loadInventory(cloud.env({nameTag: 'Host', roleTag: 'Kind', address: 'public'}))
    assert.deepEqual({name: web?.name, address: web?.address, roles: web?.roles}, {name: 'web5', address: '127.20.9.5', roles: ['web', 'lb']})

    await cloud.write([{instanceId: 'i-0pub000000000002', privateIp: '127.20.1.6', tags: {Env: 'lab'}}])
    await assert.rejects(loadInventory(cloud.env({address: 'public'})), userError(/i-0pub000000000002.*has no public IP address/))
    await cloud.write(fleet)
  })

  it('reads every page: 250 instances with pageSize 100, then with pageSize 7', async () => {
    const many = appInstances(250)
    await cloud.write(many, 100)
    const before = cloud.log.length
    const hosts = await loadInventory(cloud.env())
    assert.equal(hosts.length, 250)
    assert.equal(cloud.log.slice(before).filter((l) => l.includes('DescribeInstances 200')).length, 3, '3 pages of at most 100')
    assert.deepEqual(new Set(hosts.map((h) => h.instanceId)).size, 250)

    await cloud.write(many, 7)
    const before7 = cloud.log.length
    const hosts7 = await loadInventory(cloud.env())
    assert.deepEqual(hosts7, hosts)
    assert.equal(cloud.log.slice(before7).filter((l) => l.includes('DescribeInstances 200')).length, Math.ceil(250 / 7))
    await cloud.write(fleet)
  })

  it('sorts names naturally: app2 before app10', async () => {
    await cloud.write([...appInstances(3, undefined, 9).reverse(), ...appInstances(2)])
    const hosts = await loadInventory(cloud.env())
    assert.deepEqual(
      hosts.map((h) => h.name),
      ['app1', 'app2', 'app9', 'app10', 'app11'],
    )
    await cloud.write(fleet)
  })

  it('sends the configured region and credentials', async () => {
    const start = cloud.log.length
    await loadInventory(cloud.env({}, {region: 'eu-west-1', credentials: {accessKeyId: 'AKIDLAB', secretAccessKey: 'secret'}}))
    const lines = cloud.log.slice(start)
    assert.ok(lines.length > 0)
    for (const line of lines) assert.match(line, /key=AKIDLAB region=eu-west-1$/)
    assert.ok(!lines.some((l) => l.includes('secret')), 'the secret key is never logged')
  })

  it('takes region and credentials from the standard chain when the config has none', async () => {
    const saved = {...process.env}
    try {
      Object.assign(process.env, {AWS_REGION: 'ap-south-1', AWS_ACCESS_KEY_ID: 'AKIDFROMENV', AWS_SECRET_ACCESS_KEY: 'envsecret'})
      const env = cloud.env()
      env.aws = {endpoint: cloud.endpoint.url}
      const start = cloud.log.length
      const hosts = await loadInventory(env)
      assert.ok(hosts.length > 0)
      assert.match(cloud.log.slice(start).join('\n'), /key=AKIDFROMENV region=ap-south-1/)
    } finally {
      process.env = saved
    }
  })

  it('uses aws.profile from the shared config files', async () => {
    const saved = {...process.env}
    try {
      for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k]
      const credentials = path.join(cloud.dir, 'aws-credentials')
      const config = path.join(cloud.dir, 'aws-config')
      writeFileSync(credentials, '[labprof]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profsecret\n')
      writeFileSync(config, '[profile labprof]\nregion = sa-east-1\n')
      Object.assign(process.env, {AWS_SHARED_CREDENTIALS_FILE: credentials, AWS_CONFIG_FILE: config, AWS_EC2_METADATA_DISABLED: 'true'})
      const env = cloud.env()
      env.aws = {endpoint: cloud.endpoint.url, profile: 'labprof'}
      const start = cloud.log.length
      assert.ok((await loadInventory(env, fast)).length > 0)
      assert.match(cloud.log.slice(start).join('\n'), /key=AKIDPROFILE region=sa-east-1/)
    } finally {
      process.env = saved
    }
  })

  it('says so when no credentials can be found', async () => {
    const saved = {...process.env}
    try {
      for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k]
      Object.assign(process.env, {
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
        AWS_CONFIG_FILE: '/nonexistent/config',
        AWS_EC2_METADATA_DISABLED: 'true',
      })
      const env = cloud.env()
      env.aws = {region: 'us-east-1', endpoint: cloud.endpoint.url}
      await assert.rejects(loadInventory(env, fast), userError(/No AWS credentials found/))
    } finally {
      process.env = saved
    }
  })

  it('says so when no region is configured anywhere', async () => {
    const saved = {...process.env}
    try {
      for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k]
      Object.assign(process.env, {AWS_CONFIG_FILE: '/nonexistent/config', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials'})
      const env = cloud.env()
      delete env.aws.region
      await assert.rejects(loadInventory(env, fast), userError(/No AWS region is set for the EC2 inventory/))
    } finally {
      process.env = saved
    }
  })

  it('names the filters when no running instance matches', async () => {
    await assert.rejects(
      loadInventory(cloud.env({filters: {Env: 'staging', Role: 'app'}})),
      userError(/No running EC2 instance matches tag:Env=staging, tag:Role=app, instance-state-name=running \(endpoint http:\/\/127\.0\.0\.1:\d+, region us-east-1\)/),
    )
  })

  it('rejects two instances with the same name', async () => {
    await cloud.write([...appInstances(2), {instanceId: 'i-0dup000000000001', privateIp: '127.20.1.50', tags: {Name: 'app2', Env: 'lab'}}])
    await assert.rejects(loadInventory(cloud.env()), userError(/more than one host with the same name: app2 \(i-0lab000000000002, i-0dup000000000001\)/))
    await cloud.write(fleet)
  })
})

describe('EC2 inventory errors', () => {
  it('turns an endpoint that does not know DescribeInstances into a clear UserError', async () => {
    const cloud = await startFixtureCloud(appInstances(1), {services: [{...ec2Service, actions: {}}]})
    try {
      await assert.rejects(loadInventory(cloud.env(), fast), userError(/EC2 DescribeInstances failed .*InvalidAction: The action DescribeInstances is not valid/))
    } finally {
      await cloud.stop()
    }
  })

  it('turns an authorization failure into "EC2 refused"', async () => {
    const denied = () => {
      throw new CloudApiError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403)
    }
    const cloud = await startFixtureCloud(appInstances(1), {services: [{...ec2Service, actions: {DescribeInstances: denied}}]})
    try {
      await assert.rejects(loadInventory(cloud.env(), fast), userError(/EC2 refused DescribeInstances .*UnauthorizedOperation/))
    } finally {
      await cloud.stop()
    }
  })

  it('fails fast with a clear UserError when the endpoint is down', async () => {
    const cloud = await startFixtureCloud(appInstances(1))
    const env = cloud.env()
    await cloud.stop() // the port now refuses connections
    const started = Date.now()
    await assert.rejects(
      loadInventory(env, {ec2: {maxAttempts: 2, connectionTimeout: 1000}}),
      userError(/Cannot reach the EC2 endpoint \(endpoint http:\/\/127\.0\.0\.1:\d+, region us-east-1\): ECONNREFUSED/),
    )
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`)
  })

  it('times out on an endpoint that accepts but never answers', async () => {
    const {createServer} = await import('node:net')
    const sockets: import('node:net').Socket[] = []
    const silent = createServer((s) => void sockets.push(s))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const port = (silent.address() as import('node:net').AddressInfo).port
    try {
      const cloud = await startFixtureCloud([])
      const env = cloud.env({}, {endpoint: `http://127.0.0.1:${port}`})
      await cloud.stop()
      await assert.rejects(
        loadInventory(env, {ec2: {maxAttempts: 1, requestTimeout: 500}}),
        userError(/Cannot reach the EC2 endpoint .*127\.0\.0\.1:\d+/),
      )
    } finally {
      for (const s of sockets) s.destroy()
      silent.close()
    }
  })
})
