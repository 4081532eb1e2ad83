import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import {formatTarget, listTunnels, type TunnelEnd, type TunnelSummary} from '../../lib/mesh/tunnels.js'

const end = (tunnel: TunnelEnd, detail: string): string => `${tunnel.agent}${tunnel.online ? '' : ' (offline)'} ${detail}`
const entry = (tunnel: TunnelSummary['inbound'][number]): string =>
  tunnel.intercept?.length ? `intercept ${tunnel.intercept.join(' ')}` : `listen ${tunnel.listen}`

export default class TunnelList extends BaseCommand<typeof TunnelList> {
  static override hiddenAliases = ['tunnel:ls']
  static override description = 'Every service with the agents where it enters the mesh (INBOUND) and leaves it (OUTBOUND), and whether they are online.'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> -o json']
  static override flags = {...controllerFlags}
  static override summary = 'List tunnels'

  async run() {
    const result = await this.withController((api) => listTunnels(api))
    return this.render(result, () =>
      result.tunnels.length === 0
        ? 'No tunnels. Open one with `ztctl tunnel open outbound tcp/NAME --agent AGENT --target HOST:PORT`.'
        : this.table(result.tunnels, [
            {header: 'SERVICE', value: (t) => t.service},
            {header: 'INBOUND', value: (t) => t.inbound.map((i) => end(i, entry(i))).join(', ') || 'none'},
            {header: 'OUTBOUND', value: (t) => t.outbound.map((o) => end(o, `→ ${o.targets.map((x) => formatTarget(x)).join(' ')}`)).join(', ') || 'none'},
            {header: 'ALLOW', value: (t) => [...new Set(t.outbound.flatMap((o) => o.allow))].join(',') || 'any'},
          ]),
    )
  }
}
