import {Flags} from '@oclif/core'

import {AppConfigCommand, appConfigFlags} from '../../lib/cli/app-command.js'

export default class TerminalConfig extends AppConfigCommand {
  static override description = `Who may open a shell on AGENT's host over the mesh (\`ztctl terminal open AGENT\`), and which shell. A first config switches the terminal app on; it stays off on every agent until then.

Streams are admitted by AGENT itself: the allow list first, then the policies that name app/terminal. Every session is logged on AGENT (who, from where, when, how long, exit status).`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --agent agent-b --add-user @alice',
    '<%= config.bin %> <%= command.id %> --agent agent-b --add-user #ops --shell "/bin/bash -l"',
    '<%= config.bin %> <%= command.id %> --agent agent-b --disable',
  ]

  static override flags = {
    ...appConfigFlags,
    shell: Flags.string({description: 'the shell AGENT runs, as words (no quoting): "/bin/bash -l"; "" restores the default ($SHELL, else /bin/sh)'}),
  }

  static override summary = "Switch the terminal app on an agent on or off, and say who may use it"

  async run() {
    const flags = this.flags as typeof this.flags & {shell?: string}
    return this.configure('terminal', {shell: flags.shell})
  }
}
