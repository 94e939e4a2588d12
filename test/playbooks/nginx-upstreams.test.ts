import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {environmentSchema} from '../../src/config/schema.js'
import {commandLine} from '../../src/ssh/command.js'
import playbook, {nodeSteps, upstreamServers} from '../../playbooks/nginx-upstreams.js'
import {playbooks} from '../../playbooks/index.js'

const host = (name: string, roles: string[]) => ({name, address: `10.0.0.${name.slice(-1)}`, roles, tags: {}})

describe('play nginx-upstreams', () => {
  it('is registered and runs on the nginx role by default', () => {
    assert.ok(playbooks.includes(playbook))
    assert.deepEqual(playbook.roles, ['nginx'])
    assert.deepEqual(playbook.steps.map((s) => s.title), ['upload', 'nginx -t', 'reload'])
  })

  it('sends traffic to the app hosts only, on the app port of the config', () => {
    const hosts = [host('app1', ['app']), host('nginx1', ['nginx']), host('app2', ['app', 'cron'])]
    const env = (app?: Record<string, unknown>) => environmentSchema.parse({inventory: {source: 'static', hosts: [{name: 'x'}]}, ...(app ? {app} : {})})
    assert.deepEqual(upstreamServers(hosts, env()), [
      {address: '10.0.0.1', port: 8080},
      {address: '10.0.0.2', port: 8080},
    ])
    assert.deepEqual(upstreamServers(hosts, env({port: 9000})).map((s) => s.port), [9000, 9000])
  })

  it('works in the node folder, puts the old block back when nginx -t fails, and reloads by the pid file', () => {
    const lines = Object.values(nodeSteps).map((s) => commandLine(s))
    for (const l of lines) assert.match(l, /^cd "\$HOME\/nginx" \|\| exit 1; /)
    assert.match(commandLine(nodeSteps.check), /nginx -t -q .*\|\| \{ mv upstreams\.conf\.prev upstreams\.conf; exit 1; \}/)
    assert.match(commandLine(nodeSteps.reload), /kill -HUP "\$\(cat nginx\.pid\)"/)
  })
})
