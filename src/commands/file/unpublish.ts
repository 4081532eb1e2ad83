import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {controllerFlags, dryRunFlags, waitFlags} from '../../lib/cli/flag-groups.js'
import {dryRunText} from '../../lib/cli/render.js'

export default class FileUnpublish extends BaseCommand<typeof FileUnpublish> {
  static override args = {name: Args.string({description: 'the published name', required: true})}
  static override description = 'AGENT stops serving NAME (transfers in progress are not cut; new ones are refused).'
  static override examples = ['<%= config.bin %> <%= command.id %> app.tar.gz --agent agent-a']
  static override flags = {...controllerFlags, ...waitFlags, ...dryRunFlags, agent: Flags.string({description: 'identity name of the agent that serves it', required: true})}
  static override summary = 'Stop publishing a file'

  async run() {
    const [{unpublishFile}, {describeOutcome}] = await Promise.all([import('../../lib/mesh/apps.js'), import('../../lib/mesh/rollout.js')])
    const result = await this.withController((api) => unpublishFile(api, {agent: this.flags.agent, name: this.args.name}, this.changeOptions))
    return this.render(result, () => (result.dryRun ? dryRunText(result.dryRun) : `${this.args.name} no longer published on ${this.flags.agent} (${describeOutcome(result)})`))
  }
}
