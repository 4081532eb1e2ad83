import {identityFlag} from '../../lib/cli/app-command.js'
import {BaseCommand} from '../../lib/cli/base-command.js'

export default class FileList extends BaseCommand<typeof FileList> {
  static override description = 'Every file published in the mesh, with its size and SHA-256 as its agent reports them to you (STATE refused: your identity may not fetch it; offline: its agent is not connected).'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> -o json']
  static override flags = {...identityFlag}
  static override summary = 'List the published files'

  async run() {
    const {listFiles} = await import('../../lib/apps/client/files.js')
    const {formatBytes} = await import('../../lib/cli/progress-bar.js')
    const files = await listFiles({context: this.flags.context, home: this.home, identityFile: this.flags.identity})
    return this.render(files, () => (files.length === 0 ? 'No files are published (an admin publishes one with `ztctl file publish PATH --agent AGENT`).' : this.table(files, [
      {header: 'NAME', value: (file) => file.name},
      {header: 'AGENT', value: (file) => file.agent},
      {header: 'SIZE', value: (file) => (file.size === undefined ? undefined : formatBytes(file.size))},
      {header: 'SHA-256', value: (file) => file.sha256},
      {header: 'MODIFIED', value: (file) => file.modified},
      {header: 'STATE', value: (file) => (file.state === 'ok' ? 'ok' : `${file.state}${file.reason ? `: ${file.reason}` : ''}`)},
    ])))
  }
}
