import {ProxyConfigCommand, proxyConfigAliases} from '../../lib/cli/proxy-config-command.js'
import {secretsView} from '../../lib/cli/proxy-config-views.js'

export default class ProxyConfigSecrets extends ProxyConfigCommand {
  static override hiddenAliases = proxyConfigAliases('secrets', 'secret', 'certificate', 'certificates', 'cert', 'certs')
  static override description = "Show the agent's secrets: certificates and roots (columns as `istioctl ztunnel-config certificate`; also `proxy-config certificate`, `cert`)"
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a', '<%= config.bin %> <%= command.id %> --admin 127.0.0.1:15000 -o json']

  async run() {
    return this.show(secretsView)
  }
}
