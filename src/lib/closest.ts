// "Did you mean …?": the candidate closest to what was typed, when it is close enough to be a typo.
// Used for mistyped commands and mistyped --set keys. Imports nothing: the not-found hook loads it.

/** Levenshtein distance (insertions, deletions, substitutions), one row of memory. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({length: b.length + 1}, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }

  return row[b.length]
}

/**
 * The closest candidate, or undefined when even the best one is further than a typo: by default a third of
 * the length, at least 2 (value keys, profiles); command words pass a stricter limit.
 */
export function closest(typed: string, candidates: Iterable<string>, limit = Math.max(2, Math.floor(typed.length / 3))): string | undefined {
  let best: {distance: number; value: string} | undefined
  for (const value of candidates) {
    const distance = editDistance(typed.toLowerCase(), value.toLowerCase())
    if (distance <= limit && (!best || distance < best.distance)) best = {distance, value}
  }

  return best?.value
}
