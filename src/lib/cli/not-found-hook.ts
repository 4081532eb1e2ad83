// A mistyped command names the closest real one, TTY or not, and exits 127 (the shell's "not found").
import type {Hook} from '@oclif/core'

import {ZtError} from '../errors.js'

const hook: Hook<'command_not_found'> = async function (options) {
  const typed = options.id.replaceAll(':', ' ')
  const ids = options.config.commandIDs.map((id) => id.replaceAll(':', ' '))
  const best = ids
    .map((id) => ({distance: editDistance(typed, id), id}))
    .sort((a, b) => a.distance - b.distance)[0]
  const close = best && best.distance <= Math.max(2, Math.floor(typed.length / 3))
  const error = new ZtError('ZT_ERR_UNKNOWN_COMMAND', `"${typed}" is not a ztctl command`, {
    suggestion: close ? `did you mean \`ztctl ${best.id}\`?` : 'run `ztctl --help` for the list of commands',
  })
  process.stderr.write(`Error (${error.code}): ${error.message}\nTry this: ${error.suggestion}\n`)
  this.exit(127)
}

function editDistance(a: string, b: string): number {
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

export default hook
