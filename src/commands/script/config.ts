import {Flags} from '@oclif/core'

import {AppConfigCommand, appConfigFlags} from '../../lib/cli/app-command.js'

export default class ScriptConfig extends AppConfigCommand {
  static override description = `Who may run commands on AGENT's host (\`ztctl script run AGENT -- CMD\`), and which: listed programs, the executables of a script directory, or — only when you say so — any command line. A first config switches the script app on; it stays off on every agent until then.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> --agent agent-b --add-user @alice --add-command uname --add-command /usr/local/bin/backup',
    '<%= config.bin %> <%= command.id %> --agent agent-b --add-user #ops --script-dir /srv/ztctl-scripts',
    '<%= config.bin %> <%= command.id %> --agent agent-b --any-command',
  ]

  static override flags = {
    ...appConfigFlags,
    'add-command': Flags.string({description: 'allow a program: a name looked up on AGENT\'s PATH, or an absolute path (repeatable)', multiple: true}),
    'any-command': Flags.boolean({allowNo: true, description: 'allow any program and shell command lines (`script run --shell`); --no-any-command: only the allowed ones'}),
    'remove-command': Flags.string({description: 'take a program off the list (repeatable)', multiple: true}),
    'script-dir': Flags.string({description: 'a directory on AGENT\'s host whose executable files may be run by name; "" removes it'}),
  }

  static override summary = 'Switch the script app on an agent on or off, and say who may run what'

  async run() {
    const flags = this.flags as typeof this.flags & {'add-command'?: string[]; 'any-command'?: boolean; 'remove-command'?: string[]; 'script-dir'?: string}
    return this.configure('script', {
      addCommands: flags['add-command'], anyCommand: flags['any-command'], removeCommands: flags['remove-command'], scriptDir: flags['script-dir'],
    })
  }
}
