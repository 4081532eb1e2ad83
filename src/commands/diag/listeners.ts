import {BaseCommand} from '../../lib/cli/base-command.js'
import {netnsFlag, pidFlag} from '../../lib/cli/netns-flags.js'

export default class DiagListeners extends BaseCommand<typeof DiagListeners> {
  static override description = 'The TCP and UDP listeners inside the namespace, as `ss -ntlp` / `ss -nulp` show them there.'
  static override examples = ['<%= config.bin %> <%= command.id %> --netns /var/run/netns/pod1']
  static override flags = {netns: netnsFlag, pid: pidFlag}
  static override summary = 'Show the listening sockets of a network namespace'

  async run() {
    const {listenersView} = await import('../../lib/diag/netns-views.js')
    const view = await listenersView({netns: this.flags.netns, pid: this.flags.pid})
    return this.render(view, () => this.table(view.listeners, [
      {header: 'PROTOCOL', value: (row) => row.protocol},
      {header: 'ADDRESS', value: (row) => row.address},
      {header: 'PORT', value: (row) => row.port},
      {header: 'PROCESS', value: (row) => row.process},
    ]))
  }
}
