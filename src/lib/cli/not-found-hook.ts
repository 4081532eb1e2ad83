// A command oclif could not find: a topic alias alone (`ztctl pc`) shows the topic's help; a real
// command followed by words it does not take is a usage error (exit 2); anything else names the
// closest command or topic, TTY or not, and exits 127 (the shell's "not found").
import type {Hook} from '@oclif/core'

import {errorText} from '../error-text.js'
import {aliasIdsOf, lookupCommand, unknownCommandError} from './command-lookup.js'

const hook: Hook<'command_not_found'> = async function (options) {
  const words = [...options.id.split(':'), ...(options.argv ?? [])]
  const lookup = lookupCommand(options.config.commandIDs, words, aliasIdsOf(options.config.commands))
  if (lookup.kind === 'topic' && !lookup.corrected && lookup.rest.filter((word) => !word.startsWith('-')).length === 0) {
    const {loadHelpClass} = await import('@oclif/core')
    const Help = await loadHelpClass(options.config)
    await new Help(options.config).showHelp([lookup.path.join(':')])
    return
  }

  const error = unknownCommandError(lookup, words)
  process.stderr.write(errorText(error) + '\n')
  this.exit(error.exit)
}

export default hook
