import {BaseCommand} from '../../lib/cli/base-command.js'
import {netnsFlag, pidFlag} from '../../lib/cli/netns-flags.js'

export default class DiagIptables extends BaseCommand<typeof DiagIptables> {
  static override description = 'The namespace\'s firewall as `iptables-save` and `ip6tables-save` print it inside, plus `nft list ruleset` when it has nft tables.'
  static override examples = ['<%= config.bin %> <%= command.id %> --netns /var/run/netns/pod1']
  static override flags = {netns: netnsFlag, pid: pidFlag}
  static override summary = 'Show the iptables/nft rules of a network namespace'

  async run() {
    const {iptablesView} = await import('../../lib/diag/netns-views.js')
    const view = await iptablesView({netns: this.flags.netns, pid: this.flags.pid})
    return this.render(view, () => [
      view.iptables4 === undefined ? undefined : `# iptables-save (IPv4)\n${view.iptables4.trimEnd()}`,
      view.iptables6 === undefined ? undefined : `# ip6tables-save (IPv6)\n${view.iptables6.trimEnd()}`,
      view.nft === undefined ? undefined : `# nft list ruleset\n${view.nft.trimEnd()}`,
    ].filter((part) => part !== undefined).join('\n\n'))
  }
}
