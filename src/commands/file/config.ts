import {AppConfigCommand, appConfigFlags} from '../../lib/cli/app-command.js'

export default class FileConfig extends AppConfigCommand {
  static override description = `Who may fetch the files AGENT publishes (\`ztctl file publish\`). A first config switches the file app on; it stays off on every agent until then.

AGENT admits each fetch itself: the allow list first, then the policies that name app/file.`

  static override examples = [
    "<%= config.bin %> <%= command.id %> --agent agent-a --add-user '*'",
    '<%= config.bin %> <%= command.id %> --agent agent-a --add-user #builders --remove-user @bob',
  ]

  static override flags = {...appConfigFlags}
  static override summary = 'Switch the file app on an agent on or off, and say who may fetch its files'

  async run() {
    return this.configure('file')
  }
}
