import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'

export default class FileUnpublish extends BaseCommand<typeof FileUnpublish> {
  static override args = {name: Args.string({description: 'the published name', required: true})}
  static override description = 'AGENT stops serving NAME (transfers in progress are not cut; new ones are refused).'
  static override examples = ['<%= config.bin %> <%= command.id %> app.tar.gz --agent agent-a']
  static override flags = {agent: Flags.string({description: 'identity name of the agent that serves it', required: true})}
  static override summary = 'Stop publishing a file'

  async run() {
    const {unpublishFile} = await import('../../lib/mesh/apps.js')
    const result = await this.withController((api) => unpublishFile(api, {agent: this.flags.agent, name: this.args.name}))
    return this.render(result, () => `${this.args.name} no longer published on ${this.flags.agent} (config version ${result.version})`)
  }
}
