import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../../lib/cli/base-command.js'
import {openInbound} from '../../../lib/mesh/tunnels.js'

export default class TunnelOpenInbound extends BaseCommand<typeof TunnelOpenInbound> {
  static override args = {service: Args.string({description: 'service name, tcp/NAME', required: true})}
  static override description =
    'AGENT binds a local port (127.0.0.1 unless an IP is given; no privileges needed for ports ≥ 1024) and carries each connection over HBONE to an endpoint of the service.'
  static override examples = [
    '<%= config.bin %> <%= command.id %> tcp/web --agent agent-a --listen 8080',
    '<%= config.bin %> <%= command.id %> tcp/web --agent agent-a --listen 0.0.0.0:8080',
  ]
  static override flags = {
    agent: Flags.string({description: 'identity name of the agent that listens', required: true}),
    listen: Flags.string({description: '[IP:]PORT to listen on (IP defaults to 127.0.0.1)', required: true}),
  }
  static override summary = 'Open an inbound tunnel: where a service enters the mesh'

  async run() {
    const {agent, listen} = this.flags
    const result = await this.withController((api) => openInbound(api, {agent, listen, service: this.args.service}))
    return this.render(result, () => `inbound ${result.tunnel.service} opened on ${agent}, listening on ${result.tunnel.listen} (config version ${result.version})`)
  }
}
