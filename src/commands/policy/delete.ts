import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from '../../lib/cli/flag-groups.js'
import {dryRunText} from '../../lib/cli/render.js'
import {deletePolicy} from '../../lib/mesh/policies.js'
import {describeOutcome} from '../../lib/mesh/rollout.js'

export default class PolicyDelete extends BaseCommand<typeof PolicyDelete> {
  static override args = {name: Args.string({description: 'policy name', required: true})}
  static override description = 'Delete a policy; succeeds once every connected agent has applied the change'
  static override examples = ['<%= config.bin %> <%= command.id %> no-guests', '<%= config.bin %> <%= command.id %> no-guests --dry-run']
  static override flags = {...controllerFlags, ...waitFlags, ...dryRunFlags}

  async run() {
    const result = await this.withController((api) => deletePolicy(api, this.args.name, this.changeOptions))
    return this.render(result, () => result.dryRun ? dryRunText(result.dryRun) : `policy ${this.args.name} deleted (${describeOutcome(result)})`)
  }
}
