import {BaseCommand} from '../../lib/cli/base-command.js'
import {netnsFlag, pidFlag} from '../../lib/cli/netns-flags.js'

export default class DiagRoutes extends BaseCommand<typeof DiagRoutes> {
  static override description = 'The namespace\'s `ip rule` list and every routing table (`ip route show table all`), IPv4 and IPv6.'
  static override examples = ['<%= config.bin %> <%= command.id %> --pid 4242']
  static override flags = {netns: netnsFlag, pid: pidFlag}
  static override summary = 'Show the ip rules and routes of a network namespace'

  async run() {
    const {routesView} = await import('../../lib/diag/netns-views.js')
    const view = await routesView({netns: this.flags.netns, pid: this.flags.pid})
    return this.render(view, () => [
      `# ip -4 rule\n${view.rules4.trimEnd()}`, `# ip -4 route show table all\n${view.routes4.trimEnd()}`,
      `# ip -6 rule\n${view.rules6.trimEnd()}`, `# ip -6 route show table all\n${view.routes6.trimEnd()}`,
    ].join('\n\n'))
  }
}
