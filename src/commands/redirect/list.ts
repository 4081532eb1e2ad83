import {BaseCommand} from '../../lib/cli/base-command.js'
import {stateDirFlag} from '../../lib/cli/netns-flags.js'

export default class RedirectList extends BaseCommand<typeof RedirectList> {
  static override hiddenAliases = ['redirect:ls']
  static override description = 'Lists the workloads in the state cache (what a starting agent loads as its snapshot).'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> -o json']
  static override flags = {'state-dir': stateDirFlag}
  static override summary = 'List redirected workloads'

  async run() {
    const {listRedirects} = await import('../../lib/redirect/redirect.js')
    const rows = await listRedirects({stateDir: this.flags['state-dir']})
    return this.render(rows, () => this.table(rows, [
      {header: 'NAMESPACE', value: (row) => row.namespace},
      {header: 'POD NAME', value: (row) => row.name},
      {header: 'SERVICE ACCOUNT', value: (row) => row.serviceAccount},
      {header: 'ADDRESS', value: (row) => row.ips.join(',')},
      {header: 'NETNS', value: (row) => (row.present ? row.netns : `${row.netns} (gone)`)},
      {header: 'BACKEND', value: (row) => row.backend},
      {header: 'DNS', value: (row) => (row.dnsCapture ? 'captured' : 'off')},
    ]))
  }
}
