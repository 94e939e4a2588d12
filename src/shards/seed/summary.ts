export interface Distribution {
  median: number
  p90: number
  p99: number
  max: number
}

export function distribution(values: Uint32Array): Distribution {
  if (values.length === 0) return {median: 0, p90: 0, p99: 0, max: 0}
  const s = Uint32Array.from(values).sort()
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!
  return {median: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1]!}
}
