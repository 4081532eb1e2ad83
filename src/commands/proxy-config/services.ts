import {ProxyConfigCommand, proxyConfigAliases} from '../../lib/cli/proxy-config-command.js'
import {servicesView} from '../../lib/cli/proxy-config-views.js'

export default class ProxyConfigServices extends ProxyConfigCommand {
  static override hiddenAliases = proxyConfigAliases('services', 'service')
  static override description = "Show the agent's services (columns as `istioctl ztunnel-config services`)"
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a', '<%= config.bin %> <%= command.id %> --admin 127.0.0.1:15000 -o json']

  async run() {
    return this.show(servicesView)
  }
}
