// Durations as people write them in flags and values: a number and one unit.

/** "3h", "90m", "45s", "2d", "500ms" → seconds. Returns undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim())
  if (!match) return undefined
  const unit = {d: 86_400, h: 3600, m: 60, ms: 0.001, s: 1}[match[2] as 'd' | 'h' | 'm' | 'ms' | 's']
  return Number(match[1]) * unit
}
