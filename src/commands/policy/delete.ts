import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags} from '../../lib/cli/flag-groups.js'
import {deletePolicy} from '../../lib/mesh/policies.js'

export default class PolicyDelete extends BaseCommand<typeof PolicyDelete> {
  static override args = {name: Args.string({description: 'policy name', required: true})}
  static override description = 'Delete a policy; agents apply the change within a second'
  static override examples = ['<%= config.bin %> <%= command.id %> no-guests']
  static override flags = {...controllerFlags}

  async run() {
    const result = await this.withController((api) => deletePolicy(api, this.args.name))
    return this.render(result, () => `policy ${this.args.name} deleted (config version ${result.version})`)
  }
}
