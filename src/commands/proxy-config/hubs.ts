import {ProxyConfigCommand} from '../../lib/cli/proxy-config-command.js'
import {hubsView} from '../../lib/cli/proxy-config-views.js'

export default class ProxyConfigHubs extends ProxyConfigCommand {
  static override description = "Show the agent's hub attachments (`agent run --hub`): each hub, whether it is connected, the measured round trip and the relayed streams open through it"
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a', '<%= config.bin %> <%= command.id %> --admin unix:/var/run/ztctl/agent-a.sock -o json']

  async run() {
    return this.show(hubsView)
  }
}
