import {BaseCommand} from '../../lib/cli/base-command.js'
import {netnsFlag, pidFlag} from '../../lib/cli/netns-flags.js'

export default class DiagIptables extends BaseCommand<typeof DiagIptables> {
  static override description = 'The namespace\'s firewall as each iptables variant\'s save tool prints it inside (iptables-legacy-save and iptables-nft-save, IPv4 and IPv6: the variants keep separate rules), plus `nft list ruleset` when it has nft tables.'
  static override examples = ['<%= config.bin %> <%= command.id %> --netns /var/run/netns/pod1']
  static override flags = {netns: netnsFlag, pid: pidFlag}
  static override summary = 'Show the iptables/nft rules of a network namespace'

  async run() {
    const {iptablesView} = await import('../../lib/diag/netns-views.js')
    const view = await iptablesView({netns: this.flags.netns, pid: this.flags.pid})
    return this.render(view, () => [
      ...view.iptables.map((saved) => `# ${saved.tool} (IPv${saved.family}, iptables-${saved.variant})\n${saved.text.trimEnd()}`),
      ...(view.nft === undefined ? [] : [`# nft list ruleset\n${view.nft.trimEnd()}`]),
    ].join('\n\n') || `# ${view.netns} has no firewall rules`)
  }
}
