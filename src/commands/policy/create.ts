import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from '../../lib/cli/flag-groups.js'
import {dryRunText} from '../../lib/cli/render.js'
import {createPolicy} from '../../lib/mesh/policies.js'
import {describeOutcome} from '../../lib/mesh/rollout.js'

export default class PolicyCreate extends BaseCommand<typeof PolicyCreate> {
  static override args = {name: Args.string({description: 'policy name', required: true})}
  static override description = `An L4 rule evaluated by the agent that hosts the service, with ztunnel's semantics: any matching DENY rejects; with no ALLOW policy everything else is allowed; otherwise a connection needs a matching ALLOW. Within one policy every given field must match (any value of a field may). Live connections that a change no longer allows are closed. Succeeds once every connected agent has applied it; warns when it names an identity or a service the mesh does not have.`
  static override examples = [
    '<%= config.bin %> <%= command.id %> no-guests --action DENY --from #guest',
    '<%= config.bin %> <%= command.id %> web-from-frontend --action ALLOW --service tcp/web --from #frontend --port 8080',
    '<%= config.bin %> <%= command.id %> lan-only --action ALLOW --source-cidr 10.0.0.0/8',
  ]
  static override flags = {
    ...controllerFlags,
    ...waitFlags,
    ...dryRunFlags,
    action: Flags.option({description: 'what a match does', options: ['ALLOW', 'DENY'] as const, required: true})(),
    from: Flags.string({description: 'source @IDENTITY, #ROLE, ns:NAMESPACE, sa:NAMESPACE/ACCOUNT or spiffe://… (repeatable; default any)', multiple: true}),
    port: Flags.string({description: 'destination port (repeatable; default any)', multiple: true}),
    replace: Flags.boolean({description: 'replace a policy of the same name'}),
    service: Flags.string({description: 'tcp/NAME, udp/NAME, proxy (every proxy exit) or app/terminal|app/file|app/script (an agent\'s app) the policy applies to (repeatable; default every service)', multiple: true}),
    'source-cidr': Flags.string({description: 'source address range, e.g. 10.0.0.0/8 (repeatable; default any)', multiple: true}),
  }
  static override summary = 'Create an ALLOW or DENY policy'

  async run() {
    const {action, from, port, replace, service, 'source-cidr': sourceCidrs} = this.flags
    const input = {action, from, name: this.args.name, ports: port, services: service, sourceCidrs}
    const result = await this.withController((api) => createPolicy(api, input, replace, this.changeOptions))
    for (const warning of result.warnings) this.warning(`policy ${result.policy.name}: ${warning}`)
    return this.render(result, () => result.dryRun
      ? dryRunText(result.dryRun)
      : `policy ${result.policy.name} (${result.policy.action}) created (${describeOutcome(result)})`)
  }
}
