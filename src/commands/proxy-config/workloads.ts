import {ProxyConfigCommand, proxyConfigAliases} from '../../lib/cli/proxy-config-command.js'
import {workloadsView} from '../../lib/cli/proxy-config-views.js'

export default class ProxyConfigWorkloads extends ProxyConfigCommand {
  static override hiddenAliases = proxyConfigAliases('workloads', 'workload')
  static override description = "Show the agent's workloads (columns as `istioctl ztunnel-config workloads`)"
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a', '<%= config.bin %> <%= command.id %> --admin 127.0.0.1:15000 -o json']

  async run() {
    return this.show(workloadsView)
  }
}
