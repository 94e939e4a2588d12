import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {z} from 'zod'

import {lazy, pickPresent} from '../../src/config/lazy-schema.js'
import {configFileSchema, configFileSchemaFor} from '../../src/config/schema.js'

describe('schemas built lazily, per section used', () => {
  it('builds a lazy schema once, on first use, and .optional()/.default() on it stay lazy', () => {
    const built: string[] = []
    const deploy = lazy(() => (built.push('deploy'), z.object({path: z.string().default('~/feed')}).strict()))
    const shards = lazy(() => (built.push('shards'), z.object({logical: z.number()}).strict()))
    const env = lazy(() => (built.push('env'), z.object({name: z.string(), deploy: deploy.optional(), shards: shards.optional(), port: z.number().default(22)}).strict()))
    assert.deepEqual(built, [])
    const picked = pickPresent(env.shape, new Set(['name', 'deploy']))
    assert.deepEqual(picked, {name: true, deploy: true, port: true}, 'present keys, plus those that must be checked absent')
    const schema = env.pick(picked as Parameters<typeof env.pick>[0])
    assert.deepEqual(schema.parse({name: 'lab', deploy: {}}), {name: 'lab', deploy: {path: '~/feed'}, port: 22})
    assert.deepEqual(built, ['env', 'deploy'], 'the shards schema was never built')
    assert.ok(!schema.safeParse({name: 'lab', shards: {logical: 1}}).success, 'a section left out is an unknown key')
    assert.equal(deploy.parse({}).path, '~/feed')
    assert.deepEqual(built, ['env', 'deploy'], 'built once')
  })

  it('configFileSchemaFor(raw) accepts and rejects what configFileSchema does, with the same messages', () => {
    const files: unknown[] = [
      {environments: {lab: {inventory: {source: 'static', hosts: [{name: 'a'}]}}}},
      {environments: {lab: {inventory: {source: 'static', hosts: [{name: 'a'}]}, deploy: {keep: 3}}, prod: {inventory: {source: 'ec2'}, moves: {}}}},
      {environments: {lab: {inventory: {source: 'static', hosts: [{name: 'a'}]}, deploi: {}}}},
      {environments: {lab: {deploy: {keep: 1}}}},
      {environments: {lab: {inventory: {source: 'ec2'}, shards: {catalog: 'mysql://x', servers: []}}}},
      {environments: {}},
      {environments: []},
      {defaultEnvironment: 'x', other: 1},
      null,
    ]
    for (const raw of files) {
      const full = configFileSchema.safeParse(raw)
      const picked = configFileSchemaFor(raw).safeParse(raw)
      assert.equal(picked.success, full.success, JSON.stringify(raw))
      if (full.success) assert.deepEqual(picked.data, full.data)
      else assert.deepEqual(picked.error!.issues.map((i) => [i.path.join('.'), i.message]), full.error.issues.map((i) => [i.path.join('.'), i.message]), JSON.stringify(raw))
    }
  })
})
