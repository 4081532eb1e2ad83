// Agent log lines for a person on a terminal: time, level, message, then the other fields as key=value
// (JSON lines stay as they are for programs). Colour via chalk, off with NO_COLOR.
import chalk from 'chalk'

import type {LogLine} from '../inspect/agent-logs.js'

const LEVEL_COLOURS: Record<string, (text: string) => string> = {
  debug: chalk.gray, error: chalk.red, fatal: chalk.red, info: chalk.green, trace: chalk.gray, warn: chalk.yellow,
}

export function prettyLogLine(line: LogLine): string {
  if (typeof line === 'string') return line
  const {level, message, time, ...rest} = line
  const label = String(level ?? '-')
  const colour = LEVEL_COLOURS[label] ?? ((text: string) => text)
  const fields = Object.entries(rest).map(([key, value]) => `${chalk.dim(key + '=')}${typeof value === 'string' ? value : JSON.stringify(value)}`)
  return [chalk.dim(String(time ?? '')), colour(label.toUpperCase().padEnd(5)), String(message ?? ''), ...fields].filter((part) => part !== '').join(' ')
}
