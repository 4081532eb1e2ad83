// A mistyped command names the closest real one, TTY or not, and exits 127 (the shell's "not found").
import type {Hook} from '@oclif/core'

import {closest} from '../closest.js'
import {ZtError} from '../errors.js'

const hook: Hook<'command_not_found'> = async function (options) {
  const typed = options.id.replaceAll(':', ' ')
  const ids = options.config.commandIDs.map((id) => id.replaceAll(':', ' '))
  const best = closest(typed, ids)
  const error = new ZtError('ZT_ERR_UNKNOWN_COMMAND', `"${typed}" is not a ztctl command`, {
    suggestion: best ? `did you mean \`ztctl ${best}\`?` : 'run `ztctl --help` for the list of commands',
  })
  process.stderr.write(`Error (${error.code}): ${error.message}\nTry this: ${error.suggestion}\n`)
  this.exit(127)
}

export default hook
