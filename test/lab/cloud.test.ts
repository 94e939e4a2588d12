import {DescribeInstancesCommand, EC2Client, type EC2ServiceException} from '@aws-sdk/client-ec2'
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createServer} from 'node:net'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {writeCloudFile} from '../../src/lab/cloud/cloud-file.js'
import {startCloudEndpoint} from '../../src/lab/cloud/endpoint.js'
import {appInstances, startFixtureCloud, type FixtureCloud, type InstanceInput} from '../inventory/cloud-fixture.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const fakeAuth = 'AWS4-HMAC-SHA256 Credential=lab/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00'

const instances: InstanceInput[] = [
  ...appInstances(2),
  {
    instanceId: 'i-0web000000000001',
    privateIp: '127.20.2.1',
    publicIp: '127.20.9.1',
    launchTime: '2026-02-03T04:05:06.000Z',
    tags: {Name: 'web1', Role: 'web', Env: 'lab'},
  },
  {instanceId: 'i-0old000000000001', privateIp: '127.20.1.9', state: 'stopped', tags: {Name: 'old1', Env: 'lab'}},
  {instanceId: 'i-0bare00000000001', privateIp: '127.20.1.8'},
]

function client(url: string, region = 'us-east-1'): EC2Client {
  return new EC2Client({region, endpoint: url, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}, maxAttempts: 1})
}

async function awsError(p: Promise<unknown>): Promise<EC2ServiceException> {
  try {
    await p
  } catch (err) {
    return err as EC2ServiceException
  }
  assert.fail('expected an AWS error')
}

async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const {port} = srv.address() as {port: number}
  await new Promise((resolve) => srv.close(resolve))
  return port
}

describe('lab cloud endpoint: EC2 DescribeInstances through the real SDK', () => {
  let cloud: FixtureCloud
  let ec2: EC2Client
  before(async () => {
    cloud = await startFixtureCloud(instances)
    ec2 = client(cloud.endpoint.url, 'eu-west-1')
  })
  after(async () => {
    ec2.destroy()
    await cloud.stop()
  })

  it('answers every instance in its own reservation, with the fields the SDK parses', async () => {
    const out = await ec2.send(new DescribeInstancesCommand({}))
    assert.equal(out.Reservations?.length, 5)
    assert.equal(out.NextToken, undefined)
    const web = out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === 'i-0web000000000001')
    assert.ok(web)
    assert.deepEqual(web.State, {Code: 16, Name: 'running'})
    assert.equal(web.PrivateIpAddress, '127.20.2.1')
    assert.equal(web.PublicIpAddress, '127.20.9.1')
    assert.equal(web.PrivateDnsName, 'ip-127-20-2-1.eu-west-1.compute.internal')
    assert.equal(web.Placement?.AvailabilityZone, 'eu-west-1a', 'zone follows the signing region')
    assert.ok(web.LaunchTime instanceof Date)
    assert.equal(web.LaunchTime.toISOString(), '2026-02-03T04:05:06.000Z')
    assert.deepEqual(web.Tags, [
      {Key: 'Name', Value: 'web1'},
      {Key: 'Role', Value: 'web'},
      {Key: 'Env', Value: 'lab'},
    ])
    assert.equal(web.ImageId, 'ami-0lab0000000000000')
    const old = out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === 'i-0old000000000001')
    assert.deepEqual(old?.State, {Code: 80, Name: 'stopped'})
    const bare = out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === 'i-0bare00000000001')
    assert.deepEqual(bare?.Tags ?? [], [])
  })

  it('applies filters: tag:KEY with wildcards, tag-key, instance-state-name, instance-id, private-ip-address', async () => {
    const ids = async (Filters: {Name: string; Values: string[]}[]) =>
      (await ec2.send(new DescribeInstancesCommand({Filters}))).Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId)
    assert.deepEqual(await ids([{Name: 'tag:Role', Values: ['app']}]), ['i-0lab000000000001', 'i-0lab000000000002'])
    assert.deepEqual(await ids([{Name: 'tag:Name', Values: ['web*', 'app?']}, {Name: 'tag:Env', Values: ['lab']}]), [
      'i-0lab000000000001',
      'i-0lab000000000002',
      'i-0web000000000001',
    ])
    assert.deepEqual(await ids([{Name: 'tag-key', Values: ['Name']}, {Name: 'instance-state-name', Values: ['stopped']}]), ['i-0old000000000001'])
    assert.deepEqual(await ids([{Name: 'instance-id', Values: ['i-0bare00000000001']}]), ['i-0bare00000000001'])
    assert.deepEqual(await ids([{Name: 'private-ip-address', Values: ['127.20.2.1']}]), ['i-0web000000000001'])
    assert.deepEqual(await ids([{Name: 'tag:Env', Values: ['prod']}]), [])
  })

  it('looks up InstanceId.N and reports unknown ids like EC2', async () => {
    const out = await ec2.send(new DescribeInstancesCommand({InstanceIds: ['i-0web000000000001', 'i-0lab000000000002']}))
    assert.deepEqual(out.Reservations?.map((r) => r.Instances?.[0]?.InstanceId).sort(), ['i-0lab000000000002', 'i-0web000000000001'])
    const err = await awsError(ec2.send(new DescribeInstancesCommand({InstanceIds: ['i-0nothere00000001']})))
    assert.equal(err.name, 'InvalidInstanceID.NotFound')
    assert.equal(err.$metadata.httpStatusCode, 400)
  })

  it('pages by min(MaxResults, pageSize) and follows NextToken to the end', async () => {
    await cloud.write(appInstances(23), 10)
    const seen: string[] = []
    const pageSizes: number[] = []
    let token: string | undefined
    for (let guard = 0; guard < 20; guard++) {
      const out = await ec2.send(new DescribeInstancesCommand({MaxResults: 6, NextToken: token}))
      pageSizes.push(out.Reservations?.length ?? 0)
      seen.push(...(out.Reservations ?? []).map((r) => r.Instances![0]!.InstanceId!))
      token = out.NextToken
      if (!token) break
    }
    assert.deepEqual(pageSizes, [6, 6, 6, 5])
    assert.equal(new Set(seen).size, 23)
    const byPageSize = await ec2.send(new DescribeInstancesCommand({MaxResults: 50}))
    assert.equal(byPageSize.Reservations?.length, 10, 'cloud.json pageSize caps MaxResults')
    assert.ok(byPageSize.NextToken)
    await cloud.write(instances)
  })

  it('re-reads cloud.json on every request', async () => {
    await cloud.write([...instances, ...appInstances(1, {Env: 'lab'}, 40)])
    const out = await ec2.send(new DescribeInstancesCommand({InstanceIds: ['i-0lab000000000040']}))
    assert.equal(out.Reservations?.[0]?.Instances?.[0]?.PrivateIpAddress, '127.20.1.40')
    await cloud.write(instances)
  })

  it('answers bad input with AWS errors: unknown filter, bad NextToken, MaxResults out of range or with ids, DryRun', async () => {
    const bogus = await awsError(ec2.send(new DescribeInstancesCommand({Filters: [{Name: 'bogus-filter', Values: ['x']}]})))
    assert.equal(bogus.name, 'InvalidParameterValue')
    assert.match(bogus.message, /The filter 'bogus-filter' is invalid/)
    assert.equal(bogus.$metadata.httpStatusCode, 400)

    const token = await awsError(ec2.send(new DescribeInstancesCommand({NextToken: 'not-a-token'})))
    assert.equal(token.name, 'InvalidParameterValue')
    assert.match(token.message, /nextToken/)

    // A token only works for the query that made it.
    await cloud.write(appInstances(12), 5)
    const first = await ec2.send(new DescribeInstancesCommand({Filters: [{Name: 'tag:Env', Values: ['lab']}]}))
    assert.ok(first.NextToken)
    const reused = await awsError(ec2.send(new DescribeInstancesCommand({NextToken: first.NextToken})))
    assert.equal(reused.name, 'InvalidParameterValue')
    await cloud.write(instances)

    assert.equal((await awsError(ec2.send(new DescribeInstancesCommand({MaxResults: 3})))).name, 'InvalidParameterValue')
    assert.equal(
      (await awsError(ec2.send(new DescribeInstancesCommand({MaxResults: 5, InstanceIds: ['i-0bare00000000001']})))).name,
      'InvalidParameterCombination',
    )
    const dry = await awsError(ec2.send(new DescribeInstancesCommand({DryRun: true})))
    assert.equal(dry.name, 'DryRunOperation')
  })

  it('rejects unsigned requests and unknown actions in EC2 XML, and answers GET too', async () => {
    const unsigned = await fetch(cloud.endpoint.url, {
      method: 'POST',
      headers: {'content-type': 'application/x-www-form-urlencoded'},
      body: 'Action=DescribeInstances&Version=2016-11-15',
    })
    assert.equal(unsigned.status, 401)
    assert.match(await unsigned.text(), /^<\?xml version="1.0" encoding="UTF-8"\?><Response><Errors><Error><Code>MissingAuthenticationToken<\/Code>/)

    const unknown = await fetch(cloud.endpoint.url, {
      method: 'POST',
      headers: {'content-type': 'application/x-www-form-urlencoded', authorization: fakeAuth},
      body: 'Action=RunInstances&Version=2016-11-15',
    })
    assert.equal(unknown.status, 400)
    assert.match(
      await unknown.text(),
      /<Response><Errors><Error><Code>InvalidAction<\/Code><Message>The action RunInstances is not valid for this web service\.<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>$/,
    )

    const get = await fetch(`${cloud.endpoint.url}/?Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag:Role&Filter.1.Value.1=web`, {
      headers: {authorization: fakeAuth},
    })
    assert.equal(get.status, 200)
    assert.equal(get.headers.get('content-type'), 'text/xml;charset=UTF-8')
    const xml = await get.text()
    assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?><DescribeInstancesResponse xmlns="http:\/\/ec2.amazonaws.com\/doc\/2016-11-15\/"><requestId>/)
    assert.equal(xml.match(/<instanceId>/g)?.length, 1)
    assert.match(xml, /<instanceState><code>16<\/code><name>running<\/name><\/instanceState>/)

    assert.match(cloud.log.at(-1)!, /GET ec2 DescribeInstances 200 \d+ms key=lab region=us-east-1$/)
    assert.ok(cloud.log.some((l) => /POST ec2 DescribeInstances 401 MissingAuthenticationToken \d+ms unsigned$/.test(l)))
  })

  it('answers 500 InternalError when cloud.json is broken, and recovers when it is fixed', async () => {
    const {writeFile} = await import('node:fs/promises')
    await writeFile(path.join(cloud.dir, 'cloud.json'), '{"listen": ')
    const err = await awsError(ec2.send(new DescribeInstancesCommand({})))
    assert.equal(err.name, 'InternalError')
    assert.match(err.message, /cloud\.json is not valid JSON/)
    await cloud.write(instances)
    assert.equal((await ec2.send(new DescribeInstancesCommand({}))).Reservations?.length, 5)
  })
})

describe('lab cloud endpoint: the server process', () => {
  it('listens on cloud.json listen, logs each request to stderr, and exits 0 on SIGTERM', async () => {
    const cloud = await startFixtureCloud([]) // only for its temp dir
    await cloud.endpoint.close()
    const port = await freePort()
    await writeCloudFile(cloud.dir, {listen: {host: '127.0.0.1', port}, ec2: {instances: appInstances(3)}})
    const child = spawn(process.execPath, [path.join(repo, 'dist/src/lab/cloud/server.js'), '--dir', cloud.dir], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    try {
      for (let i = 0; i < 100 && !stderr.includes('listening'); i++) await new Promise((r) => setTimeout(r, 50))
      assert.match(stderr, new RegExp(`cloud endpoint listening on http://127\\.0\\.0\\.1:${port} \\(pid ${child.pid}\\)`))
      const ec2 = client(`http://127.0.0.1:${port}`)
      const out = await ec2.send(new DescribeInstancesCommand({}))
      ec2.destroy()
      assert.equal(out.Reservations?.length, 3)
      // The line is written once the response is sent, so it may trail the response a little.
      for (let i = 0; i < 40 && !stderr.includes('DescribeInstances 200'); i++) await new Promise((r) => setTimeout(r, 25))
      assert.match(stderr, /POST ec2 DescribeInstances 200 \d+ms key=lab region=us-east-1\n/)
      const t0 = Date.now()
      child.kill('SIGTERM')
      assert.equal(await exited, 0)
      assert.ok(Date.now() - t0 < 2000)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      await cloud.stop()
    }
  })

  it('exits 2 with usage without --dir, and 1 naming the file when cloud.json is missing', async () => {
    const run = (args: string[]) =>
      new Promise<{code: number | null; stderr: string}>((resolve) => {
        const child = spawn(process.execPath, [path.join(repo, 'dist/src/lab/cloud/server.js'), ...args], {stdio: ['ignore', 'ignore', 'pipe']})
        let stderr = ''
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
        child.on('exit', (code) => resolve({code, stderr}))
      })
    const noDir = await run([])
    assert.equal(noDir.code, 2)
    assert.match(noDir.stderr, /usage: server\.js --dir <labdir>/)
    const missing = await run(['--dir', '/nonexistent-feedops-lab'])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /\/nonexistent-feedops-lab\/cloud\.json/)
  })

  it('reports a taken port when started in-process', async () => {
    const cloud = await startFixtureCloud([])
    try {
      await assert.rejects(startCloudEndpoint({dir: cloud.dir, listen: {host: '127.0.0.1', port: cloud.endpoint.port}}), /EADDRINUSE/)
    } finally {
      await cloud.stop()
    }
  })
})
