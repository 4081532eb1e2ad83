// A reader of the Prometheus text exposition format (0.0.4), enough for the agents' istio_tcp_* counters:
// one state machine per line over `name{label="value",...} value [timestamp]`. Garbage lines are skipped
// and counted, never thrown; lines, labels and samples are bounded.

export interface Sample {
  labels: Record<string, string>
  name: string
  value: number
}

export interface ParseOptions {
  maxLabels?: number
  maxLineLength?: number
  maxSamples?: number
  /** keep only metrics whose name starts with this */
  prefix?: string
}

const NAME_START = /[A-Za-z_:]/
const NAME_CHAR = /[\w:]/
const LABEL_START = /[A-Za-z_]/
const LABEL_CHAR = /\w/
const ESCAPES: Record<string, string> = {'"': '"', '\\': '\\', n: '\n'}

/** One sample line, or undefined when it is not one. */
export function parseSampleLine(line: string, maxLabels = 64): Sample | undefined {
  let index = 0
  const readWhile = (pattern: RegExp): string => {
    const start = index
    while (index < line.length && pattern.test(line[index])) index++
    return line.slice(start, index)
  }

  if (!NAME_START.test(line[0] ?? '')) return undefined
  const name = readWhile(NAME_CHAR)
  const labels: Record<string, string> = Object.create(null)
  if (line[index] === '{') {
    index++
    let count = 0
    while (line[index] !== '}') {
      if (!LABEL_START.test(line[index] ?? '') || ++count > maxLabels) return undefined
      const label = readWhile(LABEL_CHAR)
      if (line[index] !== '=' || line[index + 1] !== '"') return undefined
      index += 2
      let value = ''
      for (;;) {
        const char = line[index++]
        if (char === undefined) return undefined
        if (char === '"') break
        if (char === '\\') {
          const escaped = ESCAPES[line[index++] ?? '']
          if (escaped === undefined) return undefined
          value += escaped
        } else {
          value += char
        }
      }

      labels[label] = value
      if (line[index] === ',') index++
      else if (line[index] !== '}') return undefined
    }

    index++
  }

  const [valueText, timestamp, extra] = line.slice(index).trim().split(/\s+/)
  if (valueText === undefined || extra !== undefined || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) return undefined
  const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : valueText === 'NaN' ? Number.NaN : Number(valueText)
  if (valueText === '' || (Number.isNaN(value) && valueText !== 'NaN')) return undefined
  return {labels, name, value}
}

/** Every sample of TEXT (filtered by prefix), with how many lines were not samples nor comments. */
export function parsePrometheusText(text: string, options: ParseOptions = {}): {invalid: number; samples: Sample[]} {
  const {maxLabels = 64, maxLineLength = 16_384, maxSamples = 100_000, prefix = ''} = options
  const samples: Sample[] = []
  let invalid = 0
  let start = 0
  while (start < text.length && samples.length < maxSamples) {
    let end = text.indexOf('\n', start)
    if (end === -1) end = text.length
    const line = text.slice(start, end).trim()
    start = end + 1
    if (line === '' || line.startsWith('#')) continue
    if (line.length > maxLineLength) {
      invalid++
      continue
    }

    if (!line.startsWith(prefix)) continue
    const sample = parseSampleLine(line, maxLabels)
    if (sample) samples.push(sample)
    else invalid++
  }

  return {invalid, samples}
}
