import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import {listPolicies} from '../../lib/mesh/policies.js'

const any = (values: readonly (number | string)[]): string => (values.length === 0 ? 'any' : values.join(','))

export default class PolicyList extends BaseCommand<typeof PolicyList> {
  static override hiddenAliases = ['policy:ls']
  static override description = 'List L4 authorization policies'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> -o yaml']
  static override flags = {...controllerFlags}

  async run() {
    const result = await this.withController((api) => listPolicies(api))
    return this.render(result, () =>
      result.items.length === 0
        ? 'No policies: every mesh identity may reach every service its tunnels allow.'
        : this.table(result.items, [
            {header: 'NAME', value: (p) => p.name},
            {header: 'ACTION', value: (p) => p.action},
            {header: 'SERVICES', value: (p) => (p.services.length === 0 ? 'all' : p.services.join(','))},
            {header: 'FROM', value: (p) => any(p.from)},
            {header: 'SOURCE CIDRS', value: (p) => any(p.sourceCidrs)},
            {header: 'PORTS', value: (p) => any(p.ports)},
          ]),
    )
  }
}
