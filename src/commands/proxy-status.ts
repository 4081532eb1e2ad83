import {BaseCommand} from '../lib/cli/base-command.js'
import {formatAge} from '../lib/cli/render.js'
import {describeHubs, proxyStatus} from '../lib/mesh/status.js'

export default class ProxyStatus extends BaseCommand<typeof ProxyStatus> {
  static override description =
    "Every agent the controller knows, whether it is connected, whether it has acknowledged the controller's latest configuration version (SYNCED) or not (STALE), and its hub attachments (state, round trip, relayed streams)."
  static override examples = ['<%= config.bin %> <%= command.id %>']
  static override summary = 'Configuration sync status of every agent'

  async run() {
    const result = await this.withController((api) => proxyStatus(api))
    return this.render(result, () =>
      result.agents.length === 0
        ? 'No agent has connected yet. Start one with `ztctl agent run -i IDENTITY.json`.'
        : this.table(result.agents, [
            {header: 'NAME', value: (a) => a.name},
            {header: 'STATUS', value: (a) => a.status},
            {header: 'VERSION', value: (a) => `${a.ackedVersion ?? '-'}/${a.controllerVersion}`},
            {header: 'ONLINE', value: (a) => (a.online ? 'yes' : 'no')},
            {header: 'HBONE', value: (a) => a.hbone || '(hubs only)'},
            {header: 'HUBS', value: (a) => describeHubs(a.hubs)},
            {header: 'LAST SEEN', value: (a) => (a.lastSeen ? formatAge(Date.parse(a.lastSeen)) + ' ago' : undefined)},
          ]),
    )
  }
}
