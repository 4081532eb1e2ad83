import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from '../../lib/cli/flag-groups.js'
import {dryRunText} from '../../lib/cli/render.js'
import {describeOutcome} from '../../lib/mesh/rollout.js'
import {closeTunnel} from '../../lib/mesh/tunnels.js'

export default class TunnelClose extends BaseCommand<typeof TunnelClose> {
  static override args = {
    direction: Args.string({description: 'which end to close', options: ['inbound', 'outbound'], required: true}),
    service: Args.string({description: 'service name, tcp/NAME or udp/NAME', required: true}),
  }
  static override description = 'Close one end of a tunnel on one agent; its listeners close and its connections end within a second. Succeeds once the agent has applied it.'
  static override examples = ['<%= config.bin %> <%= command.id %> inbound tcp/web --agent agent-a', '<%= config.bin %> <%= command.id %> outbound tcp/web --agent agent-b --no-wait']
  static override flags = {
    ...controllerFlags,
    ...waitFlags,
    ...dryRunFlags,
    agent: Flags.string({description: 'identity name of the agent', required: true}),
  }
  static override summary = 'Close an inbound or outbound tunnel'

  async run() {
    const direction = this.args.direction as 'inbound' | 'outbound'
    const result = await this.withController((api) => closeTunnel(api, direction, this.args.service, this.flags.agent, this.changeOptions))
    return this.render(result, () => result.dryRun ? dryRunText(result.dryRun) : `${direction} ${this.args.service} closed on ${this.flags.agent} (${describeOutcome(result)})`)
  }
}
