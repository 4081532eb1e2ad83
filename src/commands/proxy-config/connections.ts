import {ProxyConfigCommand, proxyConfigAliases} from '../../lib/cli/proxy-config-command.js'
import {connectionsView} from '../../lib/cli/proxy-config-views.js'

export default class ProxyConfigConnections extends ProxyConfigCommand {
  static override hiddenAliases = proxyConfigAliases('connections', 'connection')
  static override description = "Show the agent's connections (columns as `istioctl ztunnel-config connections`)"
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a', '<%= config.bin %> <%= command.id %> --admin 127.0.0.1:15000 -o json']

  async run() {
    return this.show(connectionsView)
  }
}
