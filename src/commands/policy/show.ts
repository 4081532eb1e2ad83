import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import {showPolicy} from '../../lib/mesh/policies.js'

const anyOf = (values: readonly (number | string)[]): string => (values.length === 0 ? 'any' : values.join(', '))

export default class PolicyShow extends BaseCommand<typeof PolicyShow> {
  static override args = {name: Args.string({description: 'policy name', required: true})}
  static override description = 'One policy in full, with a warning for each identity or service it names that the mesh does not have'
  static override examples = ['<%= config.bin %> <%= command.id %> no-guests', '<%= config.bin %> <%= command.id %> no-guests -o json']
  static override flags = {...controllerFlags}

  async run() {
    const result = await this.withController((api) => showPolicy(api, this.args.name))
    const {policy} = result
    for (const warning of result.warnings) this.warning(`policy ${policy.name}: ${warning}`)
    return this.render(result, () => [
      `Name:          ${policy.name}`,
      `Action:        ${policy.action}`,
      `Services:      ${policy.services.length === 0 ? 'every service' : policy.services.join(', ')}`,
      `From:          ${anyOf(policy.from)}`,
      `Source CIDRs:  ${anyOf(policy.sourceCidrs)}`,
      `Ports:         ${anyOf(policy.ports)}`,
    ].join('\n'))
  }
}
