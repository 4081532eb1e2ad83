import {watchFlags} from '../../lib/cli/flag-groups.js'
import {ProxyConfigCommand, proxyConfigAliases} from '../../lib/cli/proxy-config-command.js'
import {connectionsView} from '../../lib/cli/proxy-config-views.js'

export default class ProxyConfigConnections extends ProxyConfigCommand {
  static override hiddenAliases = proxyConfigAliases('connections', 'connection')
  static override description = "Show the agent's connections (columns as `istioctl ztunnel-config connections`)"
  static override examples = ['<%= config.bin %> <%= command.id %> agent-a', '<%= config.bin %> <%= command.id %> agent-a --watch', '<%= config.bin %> <%= command.id %> --admin 127.0.0.1:15000 -o json']
  static override flags = {...ProxyConfigCommand.flags, ...watchFlags}

  async run() {
    return this.watch(async () => connectionsView.rows(await this.dump()), (rows) => (rows.length === 0 ? connectionsView.empty : this.table(rows, connectionsView.columns)))
  }
}
