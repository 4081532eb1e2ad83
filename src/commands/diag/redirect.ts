import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {agentSocketFlag, netnsFlag, pidFlag, stateDirFlag} from '../../lib/cli/netns-flags.js'

export default class DiagRedirect extends BaseCommand<typeof DiagRedirect> {
  static override args = {workload: Args.string({description: 'NAMESPACE/NAME of a redirected workload (from the state cache)'})}
  static override description = 'Enters the network namespace (nsenter) and checks the agent\'s socket, the listeners on 15001/15006/15008 (as `ss -ntlp` shows them), each redirect rule against the expected set on the namespace\'s back end (iptables-legacy, iptables-nft or nft: the one `redirect add` recorded, else the one its rules are written with), rules written with the other iptables variant (they run too, but the namespace\'s own tool does not list them), the ip rule and the table-100 route. Every problem is a sentence saying what breaks, with the command that fixes it. Exits 0 when healthy, 1 otherwise.'
  static override examples = [
    '<%= config.bin %> <%= command.id %> --netns /var/run/netns/pod1',
    '<%= config.bin %> <%= command.id %> default/web-1 --json',
    '<%= config.bin %> <%= command.id %> --pid 4242',
  ]
  static override flags = {'agent-socket': agentSocketFlag, netns: netnsFlag, pid: pidFlag, 'state-dir': stateDirFlag}
  static override summary = 'Check a redirected namespace and say what is wrong'

  async run() {
    const {diagnoseRedirect} = await import('../../lib/diag/redirect.js')
    const {flags} = this
    const diagnosis = await diagnoseRedirect({agentSocket: flags['agent-socket'], netns: flags.netns, pid: flags.pid, stateDir: flags['state-dir'], workload: this.args.workload})
    if (!diagnosis.healthy) process.exitCode = 1
    return this.render(diagnosis, () => {
      const problems = diagnosis.checks.filter((check) => !check.ok)
      const lines = [`${diagnosis.netns}${diagnosis.workload ? ` (workload ${diagnosis.workload.namespace}/${diagnosis.workload.name})` : ''}: ${diagnosis.healthy ? 'healthy' : `${problems.length} problem(s)`}`]
      for (const check of diagnosis.checks) {
        lines.push(`${check.ok ? '  ok  ' : '  FAIL'} ${check.message}`)
        if (check.fix) lines.push(`        fix: ${check.fix}`)
      }

      return lines.join('\n')
    })
  }
}
