import {ProxyConfigCommand} from '../../lib/cli/proxy-config-command.js'
import {filesView} from '../../lib/cli/proxy-config-views.js'

export default class ProxyConfigFiles extends ProxyConfigCommand {
  static override description = 'The files the agent publishes: path on its host, size and SHA-256 as it hashed them, or why it cannot read one'
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a']

  async run() {
    return this.show(filesView)
  }
}
