// oclif's help with our not-found contract: `ztctl help foo` and `ztctl foo --help` name the closest
// command and exit 127 like an unknown command does; `ztctl pc --help` (a topic alias) shows the topic.
// `ztctl --help` itself loads nothing more than oclif's help (the lookup is imported on demand).
import {Help} from '@oclif/core'

export default class ZtHelp extends Help {
  override async showHelp(argv: string[]): Promise<void> {
    const words = argv.filter((word) => word !== 'help' && word !== '--help' && word !== '-h')
    const end = words.findIndex((word) => word.startsWith('-'))
    const subject = end === -1 ? words : words.slice(0, end)
    if (subject.length === 0) return super.showHelp(argv)
    const {aliasIdsOf, lookupCommand, unknownCommandError} = await import('./command-lookup.js')
    const lookup = lookupCommand(this.config.commandIDs, subject, aliasIdsOf(this.config.commands))
    if (lookup.kind === 'command' && !lookup.corrected) return super.showHelp([lookup.path.join(':')])
    if (lookup.kind === 'topic' && !lookup.corrected && lookup.rest.length === 0) return super.showHelp([lookup.path.join(':')])
    const {errorText} = await import('../error-text.js')
    const error = unknownCommandError(lookup, subject)
    process.stderr.write(errorText(error) + '\n')
    process.exitCode = error.exit
  }
}
