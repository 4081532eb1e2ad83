import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import {describeTunnel, formatTarget, type TunnelEnd} from '../../lib/mesh/tunnels.js'

const state = (end: TunnelEnd): string => `${end.state}${end.reason ? ` — ${end.reason}` : ''}`
const anyOf = (values: readonly (number | string)[], none: string): string => (values.length === 0 ? none : values.join(', '))

export default class TunnelDescribe extends BaseCommand<typeof TunnelDescribe> {
  static override args = {service: Args.string({description: 'service name, tcp/NAME', required: true})}
  static override description = 'One service in full (kubectl describe style): where it enters the mesh (inbound ends) and leaves it (outbound ends, targets, allow-list), each agent\'s own state with its reason, and the policies that apply to it.'
  static override examples = ['<%= config.bin %> <%= command.id %> tcp/web', '<%= config.bin %> <%= command.id %> tcp/web -o yaml']
  static override flags = {...controllerFlags}
  static override summary = 'Show one tunnel: its ends, their state, its policies'

  async run() {
    const tunnel = await this.withController((api) => describeTunnel(api, this.args.service))
    return this.render(tunnel, () => [
      `Service:   ${tunnel.service}`,
      `Inbound:${tunnel.inbound.length === 0 ? '   none (no agent listens for it)' : ''}`,
      ...tunnel.inbound.map((end) => `  ${end.agent}: ${end.intercept?.length ? `intercept ${end.intercept.join(' ')}, ` : ''}listen ${end.listen} — ${state(end)}`),
      `Outbound:${tunnel.outbound.length === 0 ? '  none (no agent hosts it)' : ''}`,
      ...tunnel.outbound.flatMap((end) => [
        `  ${end.agent}: → ${end.targets.map((target) => formatTarget(target)).join(', ')} — ${state(end)}`,
        `    allow: ${anyOf(end.allow, 'any mesh identity')}`,
      ]),
      `Policies:${tunnel.policies.length === 0 ? '  none (every identity its allow-list admits may connect)' : ''}`,
      ...tunnel.policies.map((policy) => `  ${policy.name}: ${policy.action} from ${anyOf(policy.from, 'any')}, ports ${anyOf(policy.ports, 'any')}, sources ${anyOf(policy.sourceCidrs, 'any')}`),
      `Config version: ${tunnel.version}`,
    ].join('\n'))
  }
}
