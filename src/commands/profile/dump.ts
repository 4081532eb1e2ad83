import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {renderData} from '../../lib/cli/render.js'

export default class ProfileDump extends BaseCommand<typeof ProfileDump> {
  static override args = {name: Args.string({default: 'ambient', description: 'profile name'})}
  static override description = 'Print every value of a profile, defaults included (what --set and -f can change)'
  static override examples = ['<%= config.bin %> profile dump ambient', '<%= config.bin %> profile dump minimal -o json']

  async run(): Promise<unknown> {
    const {profileValues} = await import('../../lib/kube/manifest/profiles.js')
    const values = profileValues(this.args.name, this.config.version)
    if (this.format === 'table') this.log(await renderData(values, 'yaml')) // values read best as YAML
    else await this.render(values, () => undefined)
    return values
  }
}
