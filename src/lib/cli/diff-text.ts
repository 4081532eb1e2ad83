// Unified diffs for people: added lines green, removed red, hunk headers dim (NO_COLOR honoured by chalk).
import chalk from 'chalk'

export function colorDiff(patch: string): string {
  return patch
    .split('\n')
    .filter((line) => !line.startsWith('====='))
    .map((line) => {
      if (line.startsWith('+++') || line.startsWith('---')) return chalk.bold(line)
      if (line.startsWith('+')) return chalk.green(line)
      if (line.startsWith('-')) return chalk.red(line)
      if (line.startsWith('@@')) return chalk.cyan(line)
      return line
    })
    .join('\n')
    .trimEnd()
}
