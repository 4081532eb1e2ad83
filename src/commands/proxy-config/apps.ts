import {ProxyConfigCommand} from '../../lib/cli/proxy-config-command.js'
import {appsView} from '../../lib/cli/proxy-config-views.js'

export default class ProxyConfigApps extends ProxyConfigCommand {
  static override description = "Which of the agent's apps (terminal, file, script) are on, who may use each, and the sessions open now"
  static override examples = ['<%= config.bin %> <%= command.id %> agent-b', '<%= config.bin %> <%= command.id %> agent-b -o json']

  async run() {
    return this.show(appsView)
  }
}
