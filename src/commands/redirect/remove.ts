import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {agentSocketFlag, stateDirFlag} from '../../lib/cli/netns-flags.js'

export default class RedirectRemove extends BaseCommand<typeof RedirectRemove> {
  static override description = 'Removes the rules, ip rule and route that `redirect add` installed and the tables and chains it created that are empty again, checks that the namespace\'s firewall does what it did before (the same rules, policies and non-empty chains, on the back end it was added with), deletes the cache record and tells the agent. Exits 1 when the firewall differs from before, listing each difference. (iptables-legacy cannot delete a table, and iptables-nft needs `nft` to: an empty table left that way changes nothing and is named in the output.)'
  static override examples = [
    '<%= config.bin %> <%= command.id %> --workload default/web-1',
    '<%= config.bin %> <%= command.id %> --netns /var/run/netns/pod1',
  ]
  static override flags = {
    'agent-socket': agentSocketFlag,
    netns: Flags.string({description: 'path of the network namespace', exclusive: ['pid', 'workload']}),
    pid: Flags.integer({description: 'PID of a process in the network namespace', exclusive: ['netns', 'workload'], min: 1}),
    'state-dir': stateDirFlag,
    workload: Flags.string({description: 'NAMESPACE/NAME of the workload', exclusive: ['netns', 'pid']}),
  }
  static override summary = 'Take a network namespace out of the mesh, restoring its rules'

  async run() {
    const {removeRedirect} = await import('../../lib/redirect/redirect.js')
    const {flags} = this
    const result = await removeRedirect({agentSocket: flags['agent-socket'], netns: flags.netns, pid: flags.pid, stateDir: flags['state-dir'], workload: flags.workload})
    for (const warning of result.warnings) this.logToStderr(`Warning: ${warning}`)
    return this.render(result, () => [`workload ${result.uid} removed from ${result.netns}; firewall restored (${result.backend})`, ...result.kept.map((note) => `  ${note}`)].join('\n'))
  }
}
