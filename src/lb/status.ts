import type {EnvironmentConfig} from '../config/schema.js'
import {openLb} from './context.js'
import {nodeReports, observe, policyOf} from './pass.js'
import type {StatusResult} from './render.js'

/** `lb status`: what a pass would see and decide, without the lock and without keeping a count. */
export async function lbStatus(env: EnvironmentConfig, environment: string): Promise<StatusResult> {
  const ctx = await openLb(env, environment)
  try {
    const obs = await observe(ctx)
    const policy = policyOf(ctx, obs)
    // The counts shown are the kept ones (as the last pass left them), not this probe's.
    const nodes = nodeReports(ctx, obs, policy).map((n) => {
      const kept = obs.state.counts[n.name]
      return {...n, counts: {passes: kept?.passes ?? 0, fails: kept?.fails ?? 0}}
    })
    return {lb: ctx.provider.label, nodes, unknown: policy.unknown, panic: policy.panic, warnings: policy.warnings}
  } finally {
    await ctx.close()
  }
}
