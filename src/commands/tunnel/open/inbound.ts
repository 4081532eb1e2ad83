import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../../lib/cli/base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from '../../../lib/cli/flag-groups.js'
import {dryRunText, parseDuration} from '../../../lib/cli/render.js'
import {ExitCode, ZtError} from '../../../lib/errors.js'
import {describeOutcome} from '../../../lib/mesh/rollout.js'
import {openInbound} from '../../../lib/mesh/tunnels.js'

export default class TunnelOpenInbound extends BaseCommand<typeof TunnelOpenInbound> {
  static override args = {service: Args.string({description: 'service name, tcp/NAME or udp/NAME', required: true})}
  static override description =
    'AGENT binds a local port (127.0.0.1 unless an IP is given; no privileges needed for ports ≥ 1024) and carries each connection over HBONE to an endpoint of the service (udp/NAME: a UDP port; each client address is a flow on its own HBONE stream, datagrams length-prefixed, ended after --idle-timeout of silence). With --intercept, an agent running `agent run --mode tproxy` also captures connections to those addresses (host names are answered by its DNS on 127.0.0.1:53 with stable addresses from 100.64.0.0/10); --listen is then optional. Succeeds once the agent reports the listener bound; fails with the agent\'s reason (e.g. the port is taken) when it could not.'
  static override examples = [
    '<%= config.bin %> <%= command.id %> tcp/web --agent agent-a --listen 8080',
    '<%= config.bin %> <%= command.id %> tcp/web --agent agent-a --listen 0.0.0.0:8080',
    '<%= config.bin %> <%= command.id %> tcp/web --agent pod-a --intercept web.mesh:80 --intercept 10.20.0.0/16',
    '<%= config.bin %> <%= command.id %> tcp/web --agent agent-a --listen 8080 --dry-run',
    '<%= config.bin %> <%= command.id %> udp/dns --agent laptop --listen 127.0.0.1:5353 --idle-timeout 30s',
  ]
  static override flags = {
    ...controllerFlags,
    ...waitFlags,
    ...dryRunFlags,
    agent: Flags.string({description: 'identity name of the agent that listens', required: true}),
    'idle-timeout': Flags.string({description: 'udp/ services: a flow (one client address) silent this long ends [default: 30s]'}),
    intercept: Flags.string({description: 'HOST|IP|CIDR[:PORT] a tproxy sidecar captures for the service (repeatable; IPv4)', multiple: true}),
    listen: Flags.string({description: '[IP:]PORT to listen on (IP defaults to 127.0.0.1); optional with --intercept'}),
  }
  static override summary = 'Open an inbound tunnel: where a service enters the mesh'

  async run() {
    const {agent, intercept, listen} = this.flags
    const seconds = this.flags['idle-timeout'] === undefined ? undefined : parseDuration(this.flags['idle-timeout'])
    const idleTimeout = seconds === undefined ? undefined : Math.ceil(seconds)
    if (this.flags['idle-timeout'] !== undefined && seconds === undefined) {
      throw new ZtError('ZT_ERR_USAGE', `--idle-timeout ${JSON.stringify(this.flags['idle-timeout'])} is not a duration`, {exit: ExitCode.usage, suggestion: 'e.g. --idle-timeout 30s'})
    }

    const result = await this.withController((api) => openInbound(api, {agent, idleTimeout, intercept, listen, service: this.args.service}, this.changeOptions))
    const intercepts = result.tunnel.intercept ? `, intercepting ${result.tunnel.intercept.join(', ')}` : ''
    return this.render(result, () => result.dryRun
      ? dryRunText(result.dryRun)
      : `inbound ${result.tunnel.service} opened on ${agent}, listening on ${result.tunnel.listen}${intercepts} (${describeOutcome(result)})`)
  }
}
