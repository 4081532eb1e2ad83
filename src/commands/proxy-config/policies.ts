import {ProxyConfigCommand, proxyConfigAliases} from '../../lib/cli/proxy-config-command.js'
import {policiesView} from '../../lib/cli/proxy-config-views.js'

export default class ProxyConfigPolicies extends ProxyConfigCommand {
  static override hiddenAliases = proxyConfigAliases('policies', 'policy')
  static override description = "Show the agent's policies (columns as `istioctl ztunnel-config policies`)"
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a', '<%= config.bin %> <%= command.id %> --admin 127.0.0.1:15000 -o json']

  async run() {
    return this.show(policiesView)
  }
}
