import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import {closeTunnel} from '../../lib/mesh/tunnels.js'

export default class TunnelClose extends BaseCommand<typeof TunnelClose> {
  static override args = {
    direction: Args.string({description: 'which end to close', options: ['inbound', 'outbound'], required: true}),
    service: Args.string({description: 'service name, tcp/NAME', required: true}),
  }
  static override description = 'Close one end of a tunnel on one agent; its listeners close and its connections end within a second.'
  static override examples = ['<%= config.bin %> <%= command.id %> inbound tcp/web --agent agent-a']
  static override flags = {...controllerFlags, agent: Flags.string({description: 'identity name of the agent', required: true})}
  static override summary = 'Close an inbound or outbound tunnel'

  async run() {
    const direction = this.args.direction as 'inbound' | 'outbound'
    const result = await this.withController((api) => closeTunnel(api, direction, this.args.service, this.flags.agent))
    return this.render(result, () => `${direction} ${this.args.service} closed on ${this.flags.agent} (config version ${result.version})`)
  }
}
