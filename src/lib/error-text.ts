// The words a user sees for a failure, the same from the CLI (BaseCommand) and from the agent daemon
// (proxy/daemon/main.ts, which runs without oclif): a ZtError as its message and "Try this:", anything else
// as a bug with its stack. Colour via chalk, off with NO_COLOR (https://no-color.org).
import chalk from 'chalk'

import {ZtError} from './errors.js'

// Every command loads this through BaseCommand: any non-empty NO_COLOR turns colour off everywhere.
if (process.env.NO_COLOR) chalk.level = 0

export function errorText(error: unknown): string {
  if (ZtError.is(error)) {
    const lines = [`${chalk.red('Error')} (${error.code}): ${error.message}`]
    if (error.suggestion) lines.push(`${chalk.yellow('Try this:')} ${error.suggestion}`)
    return lines.join('\n')
  }

  return `${chalk.red('Internal error')} (a bug in ztctl; please report it with this output):\n${(error as Error | undefined)?.stack ?? String(error)}`
}

/** A warning line: the change went through, but something deserves a look. */
export function warningText(message: string): string {
  return `${chalk.yellow('Warning:')} ${message}`
}
