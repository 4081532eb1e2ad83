import {Args} from '@oclif/core'

import {BaseCommand} from '../../lib/cli/base-command.js'
import {colorDiff} from '../../lib/cli/diff-text.js'

export default class ProfileDiff extends BaseCommand<typeof ProfileDiff> {
  static override args = {
    a: Args.string({description: 'first profile', required: true}),
    b: Args.string({description: 'second profile', required: true}),
  }
  static override description = 'Show the values two profiles set differently (a unified diff of `profile dump A` and `profile dump B`)'
  static override examples = ['<%= config.bin %> profile diff minimal ambient']

  async run(): Promise<unknown> {
    const {diffProfiles} = await import('../../lib/kube/manifest/profile-diff.js')
    const diff = await diffProfiles(this.args.a, this.args.b, this.config.version)
    return this.render(diff, () => (diff.changes.length === 0 ? `Profiles ${this.args.a} and ${this.args.b} are the same` : colorDiff(diff.patch)))
  }
}
