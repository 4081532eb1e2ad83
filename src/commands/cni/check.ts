import {Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'

export default class CniCheck extends BaseCommand<typeof CniCheck> {
  static override description = `Check a node's CNI directories once and print what was found (JSON with --json): the configuration files in the order the runtime reads them, the plugin count, and what is missing. Exit code 1 when something is missing. \`ztctl precheck\` runs it in a short-lived pod on each node.`
  static override examples = ['<%= config.bin %> cni check --conf-dir /etc/cni/net.d --bin-dir /opt/cni/bin --json']
  static override flags = {
    'bin-dir': Flags.string({default: '/opt/cni/bin', description: "the node's CNI plugin directory"}),
    'conf-dir': Flags.string({default: '/etc/cni/net.d', description: "the node's CNI configuration directory"}),
  }
  static override summary = "Check a node's CNI directories"

  async run(): Promise<unknown> {
    const {checkCniNode} = await import('../../lib/cni/node-check.js')
    const findings = await checkCniNode(this.flags['conf-dir'], this.flags['bin-dir'])
    if (findings.problems.length > 0) process.exitCode = 1
    return this.render(findings, () => findings.problems.length > 0
      ? findings.problems.map((problem) => `✘ ${problem}`).join('\n')
      : `✔ primary CNI configuration ${findings.configs[0]} (${findings.configs.length} in ${findings.confDir}); ${findings.plugins} plugins in ${findings.binDir}`)
  }
}
