import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {formatAge} from '../../lib/cli/render.js'

export default class HubStatus extends BaseCommand<typeof HubStatus> {
  static override args = {
    hub: Args.string({description: 'name of a local hub (found through its ready file in $ZTCTL_HOME/hubs/); default: the hub at --admin'}),
  }
  static override description = 'The agents attached to a hub, as the hub sees them: identity, address, since when, the standby streams it holds for each (how a source reaches it), relays open now, and the measured round trip.'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --admin 127.0.0.1:15010 -o json']
  static override flags = {
    admin: Flags.string({description: 'admin address of the hub (HOST:PORT or unix:PATH) [default: 127.0.0.1:15010]'}),
  }
  static override summary = "List a hub's attached agents"

  async run() {
    const {fetchHubStatus} = await import('../../lib/inspect/hub-status.js')
    const status = await fetchHubStatus({admin: this.flags.admin, home: this.home, hub: this.args.hub})
    return this.render(status, () => {
      const header = `hub ${status.hub.name} at ${status.address}: ${status.agents.length} agent(s) attached, ${status.relays} relay(s) open, ${status.waiting} waiting`
      if (status.agents.length === 0) return `${header}\nNo agent is attached. Start one with \`ztctl agent run -i AGENT.json --hub ${status.address}\`.`
      return `${header}\n${this.table(status.agents, [
        {header: 'AGENT', value: (a) => a.name ?? `(${a.spiffe ?? 'no identity'})`},
        {header: 'ADDRESS', value: (a) => a.remote},
        {header: 'CONNECTED', value: (a) => `${formatAge(Date.parse(a.connectedAt))} ago`},
        {header: 'STANDBY', value: (a) => a.standby},
        {header: 'RELAYS', value: (a) => a.relays},
        {header: 'RTT', value: (a) => (a.rttMs === undefined ? '-' : `${a.rttMs.toFixed(2)}ms`)},
      ])}`
    })
  }
}
