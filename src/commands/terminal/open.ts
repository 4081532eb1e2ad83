import {Args} from '@oclif/core'

import {identityFlag} from '../../lib/cli/app-command.js'
import {BaseCommand} from '../../lib/cli/base-command.js'

export default class TerminalOpen extends BaseCommand<typeof TerminalOpen> {
  static override args = {agent: Args.string({description: 'the agent whose host the shell runs on', required: true})}
  static override description = `An interactive shell on AGENT's host, in a real pseudo-terminal there: this terminal goes raw (every key, Ctrl-C included, goes to the remote shell), window changes follow, and the command exits with the shell's exit status.

The stream is an HBONE CONNECT to AGENT with your identity (the context's, or --identity); AGENT admits it with the terminal's allow list and its policies.`

  static override examples = ['<%= config.bin %> <%= command.id %> agent-b', '<%= config.bin %> <%= command.id %> agent-b --identity alice.json']
  static override flags = {...identityFlag}
  static override summary = "Open a shell on an agent's host"

  async run() {
    const {openTerminal} = await import('../../lib/apps/client/terminal.js')
    const {exitStatus} = await import('../../lib/apps/client/process-io.js')
    const result = await openTerminal({
      agent: this.args.agent, context: this.flags.context, home: this.home, identityFile: this.flags.identity,
      io: {input: process.stdin, output: process.stdout, term: process.env.TERM},
    })
    process.exitCode = exitStatus(result)
  }
}
