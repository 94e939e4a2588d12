import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {after, before, describe, it} from 'node:test'
import {DescribeInstancesCommand, EC2Client} from '@aws-sdk/client-ec2'

import {loadConfig} from '../../src/config/load.js'
import {labStatus} from '../../src/lab/index.js'
import {labPaths} from '../../src/lab/layout.js'
import {loadInventory} from '../../src/inventory/index.js'
import {startTestLab, type TestLab} from '../support/lab.js'

describe('lab cloud endpoint process', () => {
  let lab: TestLab
  before(async () => {
    lab = await startTestLab({hosts: 3, cloud: true})
  })
  after(() => lab?.stop())

  it('runs as a recorded child process on 127.N.0.1:4566', async () => {
    const status = await labStatus(lab.dir)
    const cloud = status.processes.find((p) => p.component === 'cloud')
    assert.ok(cloud?.alive)
    assert.equal(`${cloud.address}:${cloud.port}`, `127.${lab.net}.0.1:4566`)
    assert.match(readFileSync(`/proc/${cloud.pid}/cmdline`, 'utf8'), /cloud\/server\.js\0--dir\0/)
  })

  it('serves the lab hosts as running EC2 instances to the real AWS SDK', async () => {
    const ec2 = new EC2Client({region: 'us-east-1', endpoint: lab.layout.cloud.endpoint, credentials: {accessKeyId: 'lab', secretAccessKey: 'lab'}})
    const out = await ec2.send(new DescribeInstancesCommand({Filters: [{Name: 'tag:Env', Values: ['lab']}]}))
    const instances = (out.Reservations ?? []).flatMap((r) => r.Instances ?? [])
    assert.deepEqual(
      instances.map((i) => [i.InstanceId, i.PrivateIpAddress, i.State?.Name, i.Tags?.find((t) => t.Key === 'Name')?.Value]).sort(),
      lab.layout.hosts.map((h) => [h.instanceId, h.address, 'running', h.name]),
    )
    assert.ok(instances.every((i) => i.Tags?.some((t) => t.Key === 'Role' && t.Value === 'app')))
  })

  it('the lab config finds the hosts through the EC2 inventory', async () => {
    const {env} = loadConfig({flag: lab.configFile})
    assert.equal(env.inventory.source, 'ec2')
    const hosts = await loadInventory(env)
    assert.deepEqual(hosts.map((h) => [h.name, h.address]), lab.layout.hosts.map((h) => [h.name, h.address]))
  })

  it('cloud.json lists the lab instances with their tags', () => {
    const cloud = JSON.parse(readFileSync(labPaths.cloudJson(lab.dir), 'utf8'))
    assert.deepEqual(cloud.listen, {host: `127.${lab.net}.0.1`, port: 4566})
    assert.deepEqual(cloud.ec2.instances[0], {
      instanceId: lab.layout.hosts[0]!.instanceId,
      privateIp: lab.layout.hosts[0]!.address,
      state: 'running',
      launchTime: '2026-01-01T00:00:00.000Z',
      tags: {Name: 'app1', Role: 'app', Env: 'lab'},
    })
  })
})
