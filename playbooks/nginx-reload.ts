import type {EnvironmentConfig} from '../src/config/schema.js'
import {UserError} from '../src/errors.js'
import type {Host} from '../src/inventory/host.js'
import {openLb, type LbContext} from '../src/lb/context.js'
import {drainNode, restoreNode} from '../src/lb/drain.js'
import {NGINX_BIN} from '../src/lb/nginx-conf.js'
import {probe} from '../src/lb/probe.js'
import {sleep} from '../src/lb/state/store.js'
import {definePlaybook} from '../src/playbook/define.js'
import type {RemoteStep} from '../src/ssh/command.js'

/**
 * `feedops play nginx-reload`: reload nginx (new config, or a new binary already installed by the
 * package manager) on every NGINX node, one node at a time, each drained out of the load balancer
 * meanwhile with the same drain and restore as `feedops lb drain` / `lb restore`: drain (waits out
 * connection draining), `nginx -t`, a graceful reload, the deep probe passing again, restore. Hosts may
 * run in parallel (`--concurrency`), but only one node is out at a time: each waits for the one before
 * it to be restored. A node whose step fails stays drained by hand (and the nodes after it wait no
 * more): `feedops lb status` shows it, `feedops lb restore NODE` puts it back once fixed.
 */

/** One node out at a time, per environment: each run of the steps below takes its turn here. */
const turns = new WeakMap<EnvironmentConfig, Promise<void>>()
/** A node's turn and its open lb context, from its drain step to its restore (or its failure). */
const held = new Map<string, {release: () => void; ctx: LbContext}>()

const inNginxDir = (script: string): RemoteStep => ({script: `cd "$HOME/nginx" || exit 1; ${script}`})
export const reloadSteps = {
  check: inNginxDir(`${NGINX_BIN} -t -q -p "$PWD" -c "$PWD/nginx.conf" -e "$PWD/logs/error.log"`),
  reload: inNginxDir('test -s nginx.pid || { echo "nginx is not running (no nginx.pid)" >&2; exit 1; }; kill -HUP "$(cat nginx.pid)"'),
} as const

async function takeTurn(config: EnvironmentConfig): Promise<() => void> {
  const before = turns.get(config) ?? Promise.resolve()
  let release!: () => void
  const mine = new Promise<void>((r) => (release = r))
  turns.set(
    config,
    before.then(() => mine),
  )
  await before
  return release
}

/** Ends a node's turn: closes its context and lets the next node go. */
async function endTurn(host: Host): Promise<void> {
  const h = held.get(host.name)
  if (!h) return
  held.delete(host.name)
  try {
    await h.ctx.close()
  } finally {
    h.release()
  }
}

/** Runs a step; on failure the node's turn ends (it stays drained by hand) and the error is the step's. */
async function orEnd<T>(host: Host, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    await endTurn(host)
    throw err
  }
}

export default definePlaybook({
  name: 'nginx-reload',
  description: 'Reload nginx on every NGINX node, one node at a time, each drained out of the load balancer meanwhile (lb drain → nginx -t → reload → probe → lb restore).',
  roles: ['nginx'],
  steps: [
    {
      title: 'drain',
      run: async (h) => {
        const release = await takeTurn(h.config)
        let ctx: LbContext
        try {
          ctx = await openLb(h.config, 'the selected environment')
        } catch (err) {
          release()
          throw err
        }
        held.set(h.host.name, {release, ctx})
        return orEnd(h.host, async () => {
          h.progress('draining out of the load balancer')
          const d = await drainNode(ctx, h.host.name, 'nginx reload (feedops play nginx-reload)')
          return {drainedS: d.drainedS}
        })
      },
    },
    {title: 'nginx -t', run: (h) => orEnd(h.host, async () => void (await h.run(reloadSteps.check)))},
    {title: 'reload', run: (h) => orEnd(h.host, async () => void (await h.run(reloadSteps.reload)))},
    {
      title: 'probe',
      run: (h) =>
        orEnd(h.host, async () => {
          const ctx = held.get(h.host.name)!.ctx
          const node = ctx.nodes.find((n) => n.name === h.host.name)!
          // The reloaded workers answer within moments; a node that does not pass in 30 s stays out.
          for (const deadline = Date.now() + 30_000; ; ) {
            const r = await probe(node, ctx.lb.probe.timeoutMs)
            if (r.ok) return {ms: r.ms}
            if (Date.now() > deadline) {
              throw new UserError(`${h.host.name} fails its deep probe after the reload (${r.error ?? 'failed'}); it stays drained.`, {
                fix: `Look at ~/nginx/logs/error.log on ${h.host.name}, then \`feedops lb restore ${h.host.name}\`.`,
              })
            }
            await sleep(200)
          }
        }),
    },
    {
      title: 'restore',
      run: (h) =>
        orEnd(h.host, async () => {
          const r = await restoreNode(held.get(h.host.name)!.ctx, h.host.name)
          await endTurn(h.host)
          return {registered: r.registered || r.alreadyRegistered}
        }),
    },
  ],
  report: (values) => {
    const drain = values.drain as {drainedS: number} | undefined
    const restore = values.restore as {registered: boolean} | undefined
    return {DRAINED: drain ? `${drain.drainedS} s` : '-', 'BACK IN': restore ? (restore.registered ? 'yes' : 'no') : 'no (left drained)'}
  },
})
