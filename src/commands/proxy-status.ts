import {BaseCommand} from '../lib/cli/base-command.js'
import {controllerFlags, watchFlags} from '../lib/cli/flag-groups.js'
import {formatAge} from '../lib/cli/render.js'
import {describeHubs, proxyStatus} from '../lib/mesh/status.js'

export default class ProxyStatus extends BaseCommand<typeof ProxyStatus> {
  static override description =
    "Every agent the controller knows, whether it is connected, whether it has applied the controller's latest configuration version (SYNCED), not yet (STALE), or could not apply part of it (ERROR, with the agent's REASON), the agent's software VERSION, and its hub attachments (HUBS: state, round trip, relayed streams)."
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --watch', '<%= config.bin %> <%= command.id %> -o json']
  static override flags = {...controllerFlags, ...watchFlags}
  static override summary = 'Configuration sync status of every agent'

  async run() {
    return this.watch(() => this.withController((api) => proxyStatus(api)), (result) =>
      result.agents.length === 0
        ? 'No agent has connected yet. Start one with `ztctl agent run -i IDENTITY.json`.'
        : this.table(result.agents, [
            {header: 'NAME', value: (a) => a.name},
            {header: 'STATUS', value: (a) => a.status},
            {header: 'CONFIG', value: (a) => `${a.ackedVersion ?? '-'}/${a.controllerVersion}`},
            {header: 'ONLINE', value: (a) => (a.online ? 'yes' : 'no')},
            {header: 'HBONE', value: (a) => a.hbone || '(hubs only)'},
            // only in a mesh with hubs: one without keeps its narrower table
            ...(result.agents.some((a) => a.hubs?.length) ? [{header: 'HUBS', value: (a: (typeof result.agents)[number]) => describeHubs(a.hubs)}] : []),
            {header: 'LAST SEEN', value: (a) => (a.lastSeen ? formatAge(Date.parse(a.lastSeen)) + ' ago' : undefined)},
            {header: 'VERSION', value: (a) => a.software},
            {header: 'REASON', value: (a) => a.reason},
          ]),
    )
  }
}
