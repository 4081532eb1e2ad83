import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags, watchFlags} from '../../lib/cli/flag-groups.js'
import {formatTarget, listTunnels, type TunnelEnd, type TunnelSummary} from '../../lib/mesh/tunnels.js'

/** `agent-a (applied)`, `agent-a (error: cannot listen on …: address already in use)`. */
const tunnelEndText = (tunnel: TunnelEnd, detail: string): string =>
  `${tunnel.agent} ${detail} (${tunnel.state}${tunnel.reason ? `: ${tunnel.reason}` : ''})`
const entry = (tunnel: TunnelSummary['inbound'][number]): string =>
  tunnel.intercept?.length ? `intercept ${tunnel.intercept.join(' ')}` : `listen ${tunnel.listen}`

export default class TunnelList extends BaseCommand<typeof TunnelList> {
  static override description = "Every service with the agents where it enters the mesh (INBOUND) and leaves it (OUTBOUND), each with that agent's own state: applied, pending (not acknowledged yet), offline, or error with the agent's reason."
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> -o json', '<%= config.bin %> <%= command.id %> --watch']
  static override flags = {...controllerFlags, ...watchFlags}
  static override hiddenAliases = ['tunnel:ls']
  static override summary = 'List tunnels'

  async run() {
    return this.watch(() => this.withController((api) => listTunnels(api)), (result) =>
      result.tunnels.length === 0
        ? 'No tunnels. Open one with `ztctl tunnel open outbound tcp/NAME --agent AGENT --target HOST:PORT`.'
        : this.table(result.tunnels, [
            {header: 'SERVICE', value: (t) => t.service},
            {header: 'INBOUND', value: (t) => t.inbound.map((i) => tunnelEndText(i, entry(i))).join(', ') || 'none'},
            {header: 'OUTBOUND', value: (t) => t.outbound.map((o) => tunnelEndText(o, `→ ${o.targets.map((x) => formatTarget(x)).join(' ')}`)).join(', ') || 'none'},
            {header: 'ALLOW', value: (t) => [...new Set(t.outbound.flatMap((o) => o.allow))].join(',') || 'any'},
          ]),
    )
  }
}
