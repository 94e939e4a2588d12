/** Text as one sentence ending in exactly one period (messages built from parts must not end in "..", or in none). */
export function sentence(text: string): string {
  const t = text.trim().replace(/[.\s]+$/, '')
  return /[!?]$/.test(t) ? t : `${t}.`
}

/** A message part to go before more text: without its final period. */
export function clause(text: string): string {
  return text.trim().replace(/[.\s]+$/, '')
}
