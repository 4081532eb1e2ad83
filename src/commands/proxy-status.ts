import {BaseCommand} from '../lib/cli/base-command.js'
import {controllerFlags} from '../lib/cli/flag-groups.js'
import {formatAge} from '../lib/cli/render.js'
import {proxyStatus} from '../lib/mesh/status.js'

export default class ProxyStatus extends BaseCommand<typeof ProxyStatus> {
  static override description =
    "Every agent the controller knows, whether it is connected, and whether it has acknowledged the controller's latest configuration version (SYNCED) or not (STALE)."
  static override examples = ['<%= config.bin %> <%= command.id %>']
  static override flags = {...controllerFlags}
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
            {header: 'HBONE', value: (a) => a.hbone},
            {header: 'LAST SEEN', value: (a) => (a.lastSeen ? formatAge(Date.parse(a.lastSeen)) + ' ago' : undefined)},
          ]),
    )
  }
}
