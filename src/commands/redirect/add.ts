import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {dryRunFlags} from '../../lib/cli/flag-groups.js'
import {agentSocketFlag, netnsFlag, pidFlag, stateDirFlag} from '../../lib/cli/netns-flags.js'
import {BACKEND_REQUESTS} from '../../lib/redirect/backend.js'

export default class RedirectAdd extends BaseCommand<typeof RedirectAdd> {
  static override description = `Enters the namespace and installs the in-pod rules (Istio's REDIRECT mode, chains ZTCTL_PRERT/ZTCTL_OUTPUT): outbound TCP → 15001, inbound TCP → 15006, HBONE on 15008 untouched, skip mark 0x539, connmark 0x111, \`ip rule fwmark 0x111/0xfff lookup 100\` and a local route in table 100. Applied with iptables-restore --noflush of the iptables variant the namespace already uses (iptables-legacy or iptables-nft; else the machine's \`iptables\`), or nft with --backend nft (or when iptables is absent). Idempotent: running it again changes nothing. The state before the change is saved in the state cache so \`redirect remove\` restores it exactly. Then tells the node agent over its Unix socket; when no agent runs, the rules and cache are still written and the agent picks the workload up when it starts.

DNS capture (UDP/TCP 53 → 15053, plus the raw-table conntrack zone rules) is on by default: the node agent answers mesh service names (intercept host names) with their 100.64.0.0/10 addresses and forwards every other question to the pod's own resolver. Turn it off with --no-dns-capture.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> --netns /var/run/netns/pod1 --workload default/web-1 --service-account web',
    '<%= config.bin %> <%= command.id %> --pid 4242 --workload shop/cart-0 --service-account cart --ip 10.1.2.3',
    '<%= config.bin %> <%= command.id %> --netns /var/run/netns/pod2 --workload default/batch-0 --service-account batch --no-dns-capture',
    '<%= config.bin %> <%= command.id %> --netns /var/run/netns/pod1 --workload default/web-1 --service-account web --dry-run',
  ]
  static override flags = {
    ...dryRunFlags,
    'agent-socket': agentSocketFlag,
    backend: Flags.option({
      description: 'firewall back end: iptables-legacy, iptables-nft, nft (our own inet tables), or iptables (default: the iptables variant the namespace\'s rules use, else the machine\'s `iptables`; nft when no iptables is installed)',
      options: BACKEND_REQUESTS,
    })(),
    'dns-capture': Flags.boolean({allowNo: true, default: true, description: 'redirect the pod\'s DNS (port 53) to the agent on 15053 (--no-dns-capture: leave DNS alone)'}),
    ip: Flags.string({description: 'workload IP (repeatable; default: the namespace\'s global addresses)', multiple: true}),
    netns: netnsFlag,
    pid: pidFlag,
    'service-account': Flags.string({description: 'service account: the workload\'s identity is spiffe://TD/ns/NS/sa/SA', required: true}),
    'state-dir': stateDirFlag,
    workload: Flags.string({description: 'NAMESPACE/NAME of the workload', required: true}),
  }
  static override summary = 'Redirect a network namespace\'s traffic through the node agent'

  async run() {
    const {addRedirect, planRedirect} = await import('../../lib/redirect/redirect.js')
    const flags = this.flags
    const options = {
      agentSocket: flags['agent-socket'], backend: flags.backend, dnsCapture: flags['dns-capture'], ips: flags.ip, netns: flags.netns,
      pid: flags.pid, serviceAccount: flags['service-account'], stateDir: flags['state-dir'], workload: flags.workload,
    }
    if (flags['dry-run']) {
      const plan = await planRedirect(options)
      return this.render(plan, () => [
        `dry run, nothing changed: workload ${plan.workload.namespace}/${plan.workload.name} (${plan.ips.join(', ')}) in ${plan.netns} would get (${plan.backend}):`,
        ...plan.rules.map((rules) => `# ${rules.tool}\n${rules.text.trimEnd()}`),
        `# routing\n${plan.routing.join('\n')}`,
      ].join('\n\n'))
    }

    const result = await addRedirect(options)
    for (const warning of result.warnings) this.logToStderr(`Warning: ${warning}`)
    return this.render(result, () => `workload ${result.workload.namespace}/${result.workload.name} (${result.ips.join(', ')}) ${result.changed ? 'redirected' : 'already redirected, nothing changed'} in ${result.netns} (${result.backend})${result.agent.ack ? '; agent acknowledged' : ''}`)
  }
}
