import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../../lib/cli/base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from '../../../lib/cli/flag-groups.js'
import {dryRunText} from '../../../lib/cli/render.js'
import {describeOutcome} from '../../../lib/mesh/rollout.js'
import {formatTarget, openOutbound} from '../../../lib/mesh/tunnels.js'

export default class TunnelOpenOutbound extends BaseCommand<typeof TunnelOpenOutbound> {
  static override args = {service: Args.string({description: 'service name, tcp/NAME or udp/NAME', required: true})}
  static override description =
    'AGENT hosts the service and forwards each of its connections to one of the targets (weighted random, failover on connect errors). Succeeds once AGENT and the agents with an inbound tunnel to the service have applied it.'
  static override examples = [
    '<%= config.bin %> <%= command.id %> tcp/web --agent agent-b --target 127.0.0.1:8080',
    '<%= config.bin %> <%= command.id %> tcp/db --agent agent-b --target 10.0.0.5:5432@3 --target 10.0.0.6:5432 --allow #backend',
  ]
  static override flags = {
    ...controllerFlags,
    ...waitFlags,
    ...dryRunFlags,
    agent: Flags.string({description: 'identity name of the agent that hosts the service', required: true}),
    allow: Flags.string({description: 'only these may connect: @IDENTITY or #ROLE (repeatable; default: any mesh identity, policies still apply)', multiple: true}),
    target: Flags.string({description: 'HOST:PORT[@WEIGHT] the agent forwards to (repeatable)', multiple: true, required: true}),
  }
  static override summary = 'Open an outbound tunnel: where a service leaves the mesh'

  async run() {
    const {agent, allow, target} = this.flags
    const result = await this.withController((api) => openOutbound(api, {agent, allow, service: this.args.service, targets: target}, this.changeOptions))
    return this.render(result, () => result.dryRun
      ? dryRunText(result.dryRun)
      : `outbound ${result.tunnel.service} opened on ${agent} → ${result.tunnel.targets.map((t) => formatTarget(t)).join(', ')} (${describeOutcome(result)})`)
  }
}
