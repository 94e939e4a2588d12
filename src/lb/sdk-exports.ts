/** What src/lb takes from each ELB SDK: the build bundles exactly these (src/build/bundle-vendor.ts). */
export const ELB_CLASSIC_EXPORTS = [
  'ElasticLoadBalancingClient',
  'DescribeLoadBalancersCommand',
  'DescribeInstanceHealthCommand',
  'DescribeLoadBalancerAttributesCommand',
  'RegisterInstancesWithLoadBalancerCommand',
  'DeregisterInstancesFromLoadBalancerCommand',
] as const

export const ELB_V2_EXPORTS = [
  'ElasticLoadBalancingV2Client',
  'DescribeTargetHealthCommand',
  'DescribeTargetGroupAttributesCommand',
  'RegisterTargetsCommand',
  'DeregisterTargetsCommand',
] as const
