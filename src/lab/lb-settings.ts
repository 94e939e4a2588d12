import {targetGroupArn} from './cloud/elbv2/target-groups.js'
import {HTTP_PORT, LAB_LB_NAME, LAB_TARGET_GROUP_NAME} from './layout.js'

/** What the lab's load balancers are, without the SDK clients that make them (load-balancers.ts). */

/** The region of the lab's config (the ARNs carry it). */
export const labRegion = 'us-east-1'

/** The lab's settings for both, in AWS's terms. */
export const labHealthCheck = {target: `TCP:${HTTP_PORT}`, intervalSeconds: 5, timeoutSeconds: 2, healthyThreshold: 2, unhealthyThreshold: 2}
export const labDrainingSeconds = 5

/** The `lb` section of the lab's feedops.yml for either provider (plain data; src/config owns its schema). */
export function labLbSection(provider: 'classic' | 'elbv2' = 'classic'): Record<string, string> {
  return provider === 'classic' ? {provider: 'classic', name: LAB_LB_NAME} : {provider: 'elbv2', targetGroupArn: labTargetGroupArn()}
}

export function labTargetGroupArn(): string {
  return targetGroupArn(labRegion, LAB_TARGET_GROUP_NAME)
}

