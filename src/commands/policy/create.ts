import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import {createPolicy} from '../../lib/mesh/policies.js'

export default class PolicyCreate extends BaseCommand<typeof PolicyCreate> {
  static override args = {name: Args.string({description: 'policy name', required: true})}
  static override description = `An L4 rule evaluated by the agent that hosts the service, with ztunnel's semantics: any matching DENY rejects; with no ALLOW policy everything else is allowed; otherwise a connection needs a matching ALLOW. Within one policy every given field must match (any value of a field may). Live connections that a change no longer allows are closed.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> no-guests --action DENY --from #guest',
    '<%= config.bin %> <%= command.id %> web-from-frontend --action ALLOW --service tcp/web --from #frontend --port 8080',
    '<%= config.bin %> <%= command.id %> lan-only --action ALLOW --source-cidr 10.0.0.0/8',
  ]
  static override flags = {
    ...controllerFlags,
    action: Flags.option({description: 'what a match does', options: ['ALLOW', 'DENY'] as const, required: true})(),
    from: Flags.string({description: 'source @IDENTITY, #ROLE, ns:NAMESPACE, sa:NAMESPACE/ACCOUNT or spiffe://… (repeatable; default any)', multiple: true}),
    port: Flags.string({description: 'destination port (repeatable; default any)', multiple: true}),
    replace: Flags.boolean({description: 'replace a policy of the same name'}),
    service: Flags.string({description: 'tcp/NAME the policy applies to (repeatable; default every service)', multiple: true}),
    'source-cidr': Flags.string({description: 'source address range, e.g. 10.0.0.0/8 (repeatable; default any)', multiple: true}),
  }
  static override summary = 'Create an ALLOW or DENY policy'

  async run() {
    const {action, from, port, replace, service, 'source-cidr': sourceCidrs} = this.flags
    const input = {action, from, name: this.args.name, ports: port, services: service, sourceCidrs}
    const result = await this.withController((api) => createPolicy(api, input, replace))
    return this.render(result, () => `policy ${result.policy.name} (${result.policy.action}) created (config version ${result.version})`)
  }
}
